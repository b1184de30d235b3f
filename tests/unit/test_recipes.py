"""Modern model options (rope, rmsnorm, qk_norm, relu2, untied head, logit soft-capping) and Muon:
shapes, KV-cache decoding equal to the full forward pass, a loss that falls."""

import pytest
import torch

from workbench.config import ModelConfig, TrainConfig, estimate_params
from workbench.engine.model import GPT, KVCache
from workbench.engine.optim import make_optimizer

# each option alone, then all of them together
OPTIONS = [
    {},
    {"position": "rope"},
    {"norm": "rmsnorm"},
    {"qk_norm": True},
    {"activation": "relu2"},
    {"tie_embeddings": False},
    {"logit_softcap": 15.0},
    {
        "position": "rope",
        "norm": "rmsnorm",
        "qk_norm": True,
        "activation": "relu2",
        "tie_embeddings": False,
        "logit_softcap": 15.0,
    },
]
IDS = ["classic", "rope", "rmsnorm", "qk_norm", "relu2", "untied", "softcap", "modern"]


def tiny_model(options: dict, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=70, bias=False, activation="gelu")
    cfg.update(options, **overrides)
    model = GPT(ModelConfig(**cfg)).eval()
    if not model.config.tie_embeddings:
        # a zero head makes every logit 0; give it weights so the decoding tests see real choices
        torch.nn.init.normal_(model.lm_head.weight, std=0.02)
    return model


def greedy(model, idx, n, **kwargs):
    return torch.stack(list(model.generate(idx, n, temperature=0, **kwargs)), dim=1)


@pytest.mark.parametrize("options", OPTIONS, ids=IDS)
def test_shapes_and_param_count(options):
    model = tiny_model(options)
    logits, _ = model(torch.randint(0, 70, (3, 16)))
    assert logits.shape == (3, 16, 70)
    assert model.num_params() == estimate_params(model.config)
    assert ("wpe" in model.transformer) == (model.config.position == "learned")
    assert (model.transformer.wte.weight is model.lm_head.weight) == model.config.tie_embeddings


def test_untied_head_starts_at_zero():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=30, tie_embeddings=False))
    assert torch.all(model.lm_head.weight == 0) and model.transformer.wte.weight.std() > 0.01


def test_softcap_bounds_the_logits_and_the_loss_uses_them():
    model = tiny_model({"logit_softcap": 2.0})
    torch.nn.init.normal_(model.lm_head.weight, std=1.0)  # raw logits far beyond the cap
    idx = torch.randint(0, 70, (2, 16))
    logits, _ = model(idx)
    assert logits.abs().max() <= 2.0 and logits.abs().max() > 1.5
    model.config.logit_softcap = 0.0
    assert model(idx)[0].abs().max() > 4.0  # the same weights, uncapped
    model.config.logit_softcap = 2.0
    _, loss = model(idx, idx)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 70), idx.reshape(-1))
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("options", OPTIONS, ids=IDS)
def test_causal(options):
    model = tiny_model(options)
    idx = torch.randint(0, 70, (2, 16))
    with torch.no_grad():
        base, _ = model(idx)
        changed = idx.clone()
        changed[:, 9] = (changed[:, 9] + 1) % 70
        logits, _ = model(changed)
    torch.testing.assert_close(logits[:, :9], base[:, :9], rtol=0, atol=0)
    assert not torch.allclose(logits[:, 9], base[:, 9])


@pytest.mark.parametrize("options", OPTIONS, ids=IDS)
def test_cached_decoding_matches_the_full_forward_pass(options):
    model = tiny_model(options, seed=3)
    idx = torch.randint(0, 70, (2, 12))
    cache = KVCache(model.config, 2, idx.device, torch.float32)
    with torch.no_grad():
        full, _ = model(idx)
        torch.testing.assert_close(model.forward_cached(idx[:, :5], torch.arange(5), cache), full[:, 4])
        for t in range(5, 12):
            # the fixed-shape step a compiled decoder runs (span None: the whole cache, masked) and the eager one
            for span in (None, t + 1):
                step = model.forward_cached(idx[:, t : t + 1], torch.tensor([t]), cache, span)
                torch.testing.assert_close(step, full[:, t])


@pytest.mark.parametrize("options", OPTIONS, ids=IDS)
def test_greedy_tokens_with_and_without_the_cache(options):
    # 30 new tokens after 6: the window slides past block_size=16, re-prefilling the cache
    model = tiny_model(options, seed=4)
    idx = torch.randint(0, 70, (2, 6))
    assert torch.equal(greedy(model, idx, 30), greedy(model, idx, 30, use_cache=False))


@pytest.mark.parametrize(
    "options,optimizer",
    [({}, "adamw"), (OPTIONS[-1], "adamw"), ({}, "muon"), (OPTIONS[-1], "muon")],
    ids=["classic-adamw", "modern-adamw", "classic-muon", "modern-muon"],
)
def test_loss_falls(options, optimizer):
    torch.manual_seed(0)
    model = tiny_model(options).train()
    train = TrainConfig(lr=3e-3, optimizer=optimizer, muon_lr=0.02)
    opt = make_optimizer(model, train, "cpu")
    # a fixed pattern to memorise: every sequence is a shifted run of the same 17 tokens
    data = (torch.arange(17)[None, :] + torch.randint(0, 50, (32, 1))) % 70
    x, y = data[:, :-1], data[:, 1:]
    losses = []
    for _ in range(60):
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    model = tiny_model(OPTIONS[-1])
    opt = make_optimizer(model, TrainConfig(optimizer="muon", lr=1e-3, muon_lr=0.02), "cpu")
    names = {p: n for n, p in model.named_parameters()}
    muon = {names[p] for p in opt.muon.param_groups[0]["params"]}
    adamw = {names[p] for g in opt.adamw.param_groups for p in g["params"]}
    assert muon == {n for n, p in model.named_parameters() if n.startswith("transformer.h.") and p.dim() == 2}
    assert {"transformer.wte.weight", "lm_head.weight", "transformer.ln_f.weight"} <= adamw
    assert not muon & adamw and len(muon | adamw) == len(names)


# ------------------------------------------------------------------ recipes


# shakespeare-char's modern recipe keeps its head tied (the recipe sweep, README); gpt2-124m unties it
@pytest.mark.parametrize("name, tied", [("shakespeare-char", True), ("gpt2-124m", False)])
def test_recipe_modern_sets_its_keys_and_single_keys_win(name, tied):
    from workbench import presets

    preset = presets.load(name)
    classic = presets.resolve(preset, [])
    modern = presets.resolve(preset, ["recipe=modern"])
    assert (classic.recipe, modern.recipe) == ("classic", "modern")
    assert classic.model.position == "learned" and classic.train.optimizer == "adamw"
    m = modern.model
    assert (m.position, m.norm, m.qk_norm, m.activation, m.tie_embeddings) == ("rope", "rmsnorm", True, "relu2", tied)
    assert m.logit_softcap > 0 and modern.train.optimizer == "muon"
    # everything outside the recipe stays the preset's (and its profile's)
    assert modern.model.n_layer == classic.model.n_layer and modern.train.lr == classic.train.lr
    assert presets.resolve(preset, ["recipe=modern", "recipe=classic"]).model.position == "learned"  # the last wins
    mixed = presets.resolve(preset, ["recipe=modern", "model.position=learned", "train.optimizer=adamw"])
    assert mixed.model.position == "learned" and mixed.train.optimizer == "adamw" and mixed.model.qk_norm


def test_addition_modern_is_muon_on_the_classic_architecture():
    from workbench import presets

    modern = presets.resolve(presets.load("addition"), ["recipe=modern"])
    assert modern.train.optimizer == "muon" and modern.model.position == "learned" and modern.model.tie_embeddings


def test_an_unknown_recipe_is_refused_with_the_choices():
    from workbench import presets
    from workbench.config import ConfigError

    with pytest.raises(ConfigError, match="no recipe 'modrn'") as exc:
        presets.resolve(presets.load("addition"), ["recipe=modrn"])
    assert "classic, modern" in exc.value.hint


def test_gpt2_weights_refuse_a_modern_architecture():
    from workbench import presets
    from workbench.config import ConfigError

    preset = presets.load("gpt2-124m")
    with pytest.raises(ConfigError, match="model.position=rope.*disagree with model.init_from=gpt2"):
        presets.resolve(preset, ["profile=finetune", "recipe=modern"])
    with pytest.raises(ConfigError, match="model.qk_norm=true disagrees with model.init_from=gpt2"):
        presets.resolve(preset, ["profile=finetune", "model.qk_norm=true"])
    # the optimizer is no part of the architecture: Muon may fine-tune GPT-2
    assert presets.resolve(preset, ["profile=finetune", "train.optimizer=muon"]).model.position == "learned"


def test_config_values_show_the_recipe_and_count_it_as_the_preset():
    from workbench import presets
    from workbench.tui.config_values import changed_keys, flat_values, preset_values

    cfg = presets.resolve(presets.load("shakespeare-char"), ["recipe=modern", "train.muon_lr=0.05"]).to_dict()
    values = flat_values(cfg)
    assert values["recipe"] == "modern" and values["model.position"] == "rope"
    assert changed_keys(values, preset_values(cfg)) == ["train.muon_lr"]  # the recipe's keys are the preset's


# ------------------------------------------------------------------- export


def char_tokenizer():
    from workbench.data.tokenizers import CharTokenizer

    return CharTokenizer("".join(chr(c) for c in range(48, 48 + 70)))


def test_export_hf_of_relu2_and_an_untied_head_gives_transformers_the_same_greedy_tokens(tmp_path):
    transformers = pytest.importorskip("transformers")
    from workbench.engine.export import export_hf

    model = tiny_model({"activation": "relu2", "tie_embeddings": False}, seed=6, bias=True)
    export_hf(model, char_tokenizer(), tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True).eval()
    assert hf.config.activation_function == "relu2" and not hf.config.tie_word_embeddings
    x = torch.randint(0, 70, (1, 5))
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x)[0], atol=1e-4, rtol=0)
    hf_greedy = hf.generate(x, max_new_tokens=11, do_sample=False, pad_token_id=0)[0, 5:]
    assert torch.equal(hf_greedy, greedy(model, x, 11)[0])


@pytest.mark.parametrize(
    "options,fmt,words",
    [
        (OPTIONS[-1], "hf", "--format hf has no equivalent of model.position=rope"),
        ({"norm": "rmsnorm"}, "hf", "model.norm=rmsnorm: transformers' RMSNorm models"),
        ({"qk_norm": True}, "hf", "model.qk_norm=true"),
        ({"logit_softcap": 15.0}, "hf", "model.logit_softcap=15.0"),
        ({"activation": "relu2"}, "llmc", "--format llmc has no equivalent of model.activation=relu2"),
        ({"tie_embeddings": False}, "llmc", "model.tie_embeddings=false"),
        ({"position": "rope"}, "llmc", "model.position=rope"),
    ],
)
def test_export_refuses_what_the_format_cannot_represent_in_one_sentence(tmp_path, options, fmt, words):
    from workbench.config import ConfigError
    from workbench.engine.export import export_hf, export_llmc

    with pytest.raises(ConfigError) as exc:
        (export_hf if fmt == "hf" else export_llmc)(tiny_model(options), char_tokenizer(), tmp_path / "out")
    assert words in exc.value.message and exc.value.message.count(". ") == 0
    assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.parametrize("with_weight", [True, False])
def test_rms_norm_and_its_written_out_backward_match_torch(with_weight):
    from workbench.engine.model import RMSNormFunction, rms_norm

    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True) if with_weight else None
    torch.testing.assert_close(rms_norm(x, w), torch.nn.functional.rms_norm(x, (8,), w, eps=1e-5))
    assert torch.autograd.gradcheck(lambda x, w: RMSNormFunction.apply(x, w, 1e-5), (x, w))


def test_init_from_a_run_takes_its_architecture_modern_or_from_before_the_options(tmp_path):
    import json

    from workbench import presets
    from workbench.config import ConfigError

    preset = presets.load("shakespeare-char")
    modern = presets.resolve(preset, ["recipe=modern"]).to_dict()
    old = presets.resolve(preset, []).to_dict()
    for key in ("position", "norm", "qk_norm", "tie_embeddings", "logit_softcap"):
        del old["model"][key]  # a run from before the options existed
    for name, config in (("modern", modern), ("old", old)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        (tmp_path / name / "best.pt").write_bytes(b"")  # only its presence is checked before loading
    from_modern = presets.resolve(preset, [f"model.init_from={tmp_path / 'modern'}"])
    assert from_modern.model.position == "rope" and from_modern.model.logit_softcap == modern["model"]["logit_softcap"]
    from_old = presets.resolve(preset, [f"model.init_from={tmp_path / 'old'}"])
    assert from_old.model.position == "learned" and from_old.model.norm == "layernorm"
    with pytest.raises(ConfigError, match="model.position=rope.*disagree"):
        presets.resolve(preset, ["recipe=modern", f"model.init_from={tmp_path / 'old'}"])


def test_gptbench_presets_lists_each_recipe_and_what_it_sets(capsys):
    from workbench.commands.show_preset import show_preset

    show_preset("shakespeare-char", ["recipe=modern"], "cpu")
    out = capsys.readouterr().out
    assert "# recipe classic (--set recipe=classic): the preset as written" in out
    assert "# recipe modern (this config): model.position=rope, model.norm=rmsnorm" in out
    assert 'position = "rope"' in out and 'optimizer = "muon"' in out
