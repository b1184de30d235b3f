"""Config: presets resolve, overrides parse by type, mistakes get a sentence and a hint."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from workbench import config, presets, readme_tables
from workbench.config import Config, ConfigError, estimate_params, parse_override
from workbench.tasks import TEXT_TASKS


def resolve(name, *overrides, device="cpu"):
    return presets.resolve(presets.load(name), list(overrides), device)


def test_every_bundled_preset_resolves_on_cpu_and_gpu():
    names = set(presets.available())
    assert {"addition", "shakespeare-char", "gpt2-124m"} <= names
    for name in names:
        for device in ("cpu", "cuda"):
            cfg = resolve(name, device=device)
            assert cfg.preset == name


def test_shakespeare_profile_follows_the_device():
    cpu, gpu = resolve("shakespeare-char"), resolve("shakespeare-char", device="cuda")
    assert (cpu.profile, cpu.model.n_layer, cpu.model.n_embd, cpu.model.block_size, cpu.train.batch_size) == (
        "cpu",
        4,
        128,
        64,
        12,
    )
    assert (gpu.profile, gpu.model.n_layer, gpu.model.n_embd, gpu.model.block_size, gpu.train.batch_size) == (
        "gpu",
        6,
        384,
        256,
        64,
    )
    assert gpu.model.dropout == 0.2 and cpu.model.dropout == 0.0
    # an explicit device or profile wins over the machine
    assert resolve("shakespeare-char", "train.device=cuda").profile == "gpu"
    assert resolve("shakespeare-char", "profile=gpu").model.n_layer == 6


def test_gpt2_preset_is_gpt2_small():
    cfg = resolve("gpt2-124m")
    assert estimate_params(cfg.model) == 123_689_472  # nanoGPT's 123.69M (vocab padded to 50304)
    assert cfg.model.padded_vocab_size == 50304
    assert cfg.tokens_per_step(1) == 524_288 and cfg.train.batch_size is None  # auto: the trainer picks the micro-batch
    cfg.train.batch_size = 16
    assert cfg.grad_accum_steps(1) == 32
    assert cfg.grad_accum_steps(8) == 4  # 8 GPUs share the same global batch


def test_batch_size_auto_needs_tokens_per_step():
    with pytest.raises(ConfigError, match="tokens_per_step"):
        resolve("addition", "train.batch_size=auto")
    assert resolve("addition", "train.batch_size=auto", "train.tokens_per_step=3072").train.batch_size is None


def test_overrides_are_parsed_by_field_type():
    cfg = resolve(
        "addition", "train.lr=3e-4", "model.n_layer=2", "model.bias=false", "train.compile=auto", "train.max_steps=1e3"
    )
    assert (cfg.train.lr, cfg.model.n_layer, cfg.model.bias, cfg.train.compile, cfg.train.max_steps) == (
        3e-4,
        2,
        False,
        None,
        1000,
    )


@pytest.mark.parametrize(
    "override, words",
    [
        ("train.lrr=1", ["train.lrr", "train.lr"]),
        ("lr=1", ["'lr'", "train.lr"]),
        ("train.lr=fast", ["train.lr", "number", "'fast'"]),
        ("model.n_layer=2.5", ["model.n_layer", "integer"]),
        ("model.bias=maybe", ["model.bias", "true or false"]),
        ("model.n_embd=50", ["n_embd=50", "n_head=3", "multiple of 3"]),
        ("data.tokenizer=bytes", ["data.tokenizer", "digits, char, gpt2"]),
        ("train.device=tpu", ["train.device", "cpu"]),
        ("profile=turbo", ["profile 'turbo'", "default"]),
        ("nonsense", ["key=value"]),
    ],
)
def test_bad_overrides_name_the_key_and_give_a_hint(override, words):
    with pytest.raises(ConfigError) as info:
        resolve("addition", override)
    text = str(info.value)
    assert info.value.hint, "every config error carries a hint"
    for word in words:
        assert word in text


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError) as info:
        presets.load("shakespear")
    assert "shakespeare-char" in info.value.hint


def test_user_presets_are_found(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTBENCH_PRESETS", str(tmp_path))
    (tmp_path / "tiny.toml").write_text(
        'description = "mine"\n[model]\nn_layer = 1\n[data]\nkind = "addition"\ntokenizer = "digits"\n'
    )
    assert presets.available()["tiny"].description == "mine"
    assert resolve("tiny").model.n_layer == 1


def test_config_round_trips_through_a_dict():
    cfg = resolve("gpt2-124m", "train.compile=false")
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_tokens_per_step_must_split_into_micro_batches():
    with pytest.raises(ConfigError, match="multiple of"):
        resolve("gpt2-124m", "train.tokens_per_step=1000")
    assert parse_override("a.b = c") == ("a.b", "c")


def test_gpt2_preset_follows_build_nanogpt_on_fineweb_edu():
    cfg = resolve("gpt2-124m")
    assert cfg.data.path == "fineweb-edu" and cfg.train.eval_tasks == ["hellaswag"]
    assert (cfg.train.max_steps, cfg.train.warmup_steps) == (19_073, 715)
    assert abs(cfg.train.max_steps * cfg.tokens_per_step(1) - 10e9) < 1e6  # one pass over the 10B tokens
    small = resolve("gpt2-124m", "profile=shakespeare")
    assert small.data.path == "" and small.train.eval_tasks == [] and small.model.n_layer == 12


def test_list_keys_from_set_and_toml(tmp_path, monkeypatch):
    assert resolve("gpt2-124m", "train.eval_tasks=hellaswag,ppl").train.eval_tasks == ["hellaswag", "ppl"]
    assert resolve("gpt2-124m", "train.eval_tasks=[ppl]").train.eval_tasks == ["ppl"]
    assert resolve("gpt2-124m", "train.eval_tasks=").train.eval_tasks == []
    monkeypatch.setenv("GPTBENCH_PRESETS", str(tmp_path))
    (tmp_path / "mine.toml").write_text(
        '[data]\ntokenizer = "gpt2"\n[train]\neval_tasks = ["ppl", "hellaswag"]\neval_tasks_limit = 100\n'
    )
    cfg = resolve("mine")
    assert (cfg.train.eval_tasks, cfg.train.eval_tasks_limit) == (["ppl", "hellaswag"], 100)
    assert Config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "preset, override, words",
    [
        ("gpt2-124m", "train.eval_tasks=hellaswag,mmlu", ["train.eval_tasks", "hellaswag, ppl", "'mmlu'"]),
        ("shakespeare-char", "train.eval_tasks=hellaswag", ["hellaswag", "data.tokenizer=gpt2", "char"]),
        ("addition", "train.eval_tasks=ppl", ["addition", "train.eval_tasks="]),
        ("gpt2-124m", "train.eval_tasks_limit=-1", ["train.eval_tasks_limit must be at least 0, got -1."]),
        ("gpt2-124m", "data.on_device=sometimes", ["data.on_device", "true or false or auto"]),
    ],
)
def test_bad_task_settings_name_the_key(preset, override, words):
    with pytest.raises(ConfigError) as info:
        resolve(preset, override)
    assert info.value.hint and all(w in str(info.value) for w in words), str(info.value)


def test_readme_key_table_is_made_from_the_fields():
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert readme_tables.table_in(readme, "config keys") == config.keys_markdown(), f"run `{readme_tables.COMMAND}`"


def test_every_key_documents_itself():
    for key in config.all_keys():
        assert config.help_of(key), f"{key} has no help"
    assert config.choices("train.eval_tasks") == TEXT_TASKS and config.choices("train.schedule")[0] == "cosine"
    toml = config.to_toml(config.Config())
    assert "# peak learning rate, reached after a linear warmup\nlr = 0.001" in toml
    assert "(cosine | wsd | constant)" in toml


def test_a_section_checks_what_ties_its_keys_together():
    cfg = config.Config()
    cfg.model.n_head = 5
    with pytest.raises(ConfigError, match="not divisible by model.n_head=5"):
        cfg.model.check()


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.n_layer=0", "model.n_layer must be at least 1, got 0."),
        ("model.dropout=1", "model.dropout must be in [0, 1), got 1.0."),
        ("train.lr=0", "train.lr must be > 0, got 0.0."),
        ("train.beta2=1.0", "train.beta2 must be in [0, 1), got 1.0."),
        ("train.decay_fraction=1.5", "train.decay_fraction must be in (0, 1], got 1.5."),
        ("data.ndigit=10", "data.ndigit must be in [1, 9], got 10."),
        ("train.keep_last=-2", "train.keep_last must be at least 0, got -2."),
    ],
)
def test_a_value_out_of_its_range_names_the_key_the_value_and_the_range(override, message):
    with pytest.raises(ConfigError) as info:
        resolve("addition", override)
    key = override.partition("=")[0]
    assert info.value.message == message
    assert info.value.hint == f"try --set {key}={config._toml_value(config.default_of(key))}"


def test_every_default_lies_in_its_range():
    for key in config.all_keys():
        within = config.range_of(key)
        assert within is None or config.default_of(key) is None or config.default_of(key) in within, key


def test_range_ends_are_open_or_closed_as_written():
    half_open = config.Range.parse("[0, 1)")
    assert 0 in half_open and 0.999 in half_open and 1 not in half_open and -0.001 not in half_open
    positive = config.Range.parse("(0, inf)")
    assert 0 not in positive and 1e-12 in positive and 1e300 in positive
    assert (str(half_open), str(positive), str(config.Range.parse("[1, inf)"))) == ("in [0, 1)", "> 0", "at least 1")
    with pytest.raises(ValueError):
        config.Range.parse("0..1")


def test_a_new_key_carries_its_range_and_resume_rule(monkeypatch):
    """One line declares the key: its range check, README's row, the picker's hint and the resume refusal follow."""
    from workbench.engine import resume
    from workbench.tui.config_values import allowed_values

    @dataclass
    class Train(config.TrainConfig):
        cooldown: float = config.setting(0.5, "a key added in one line", within="[0, 1)")

    monkeypatch.setitem(config.SECTIONS, "train", Train)
    cfg = config.Config(train=Train())
    config.set_value(cfg, "train.cooldown", "1")
    with pytest.raises(ConfigError) as info:
        config.validate(cfg)
    assert str(info.value) == "train.cooldown must be in [0, 1), got 1.0. Hint: try --set train.cooldown=0.5"
    assert allowed_values("train.cooldown") == "a number, in [0, 1)"
    assert "| `train.cooldown` | `0.5` | `[0, 1)` | fixed | a key added in one line |" in config.keys_markdown()
    assert "train.cooldown" not in resume.changeable_keys()
    checkpointed, asked = config.Config(train=Train()), config.Config(train=Train(cooldown=0.25))
    assert resume._differing_fixed_keys(checkpointed, asked) == ["train.cooldown: checkpoint 0.5, asked 0.25"]


def test_the_resume_rule_is_the_fields():
    """Model and data keys are fixed, the optimizer's and the data order's too; budget and cadence may change."""
    fixed = {k for k in config.all_keys() if config.fixed_on_resume(k)}
    assert {k for k in config.all_keys() if k.split(".")[0] in ("model", "data")} <= fixed
    assert {k for k in fixed if k.startswith("train.")} == {
        f"train.{name}" for name in ("seed", "optimizer", "weight_decay", "beta1", "beta2", "dtype")
    }
    assert not any(k.startswith("log.") for k in fixed)
