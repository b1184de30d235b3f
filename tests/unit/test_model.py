"""The GPT model: parity with HuggingFace GPT-2, causality, loss masking,
padded vocab, KV-cache decoding and sampling."""

import pytest
import torch

from workbench.config import ModelConfig, estimate_params
from workbench.engine.model import GPT


def tiny_model(seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=70, dropout=0.0, bias=True)
    cfg.update(overrides)
    return GPT(ModelConfig(**cfg)).eval()


def greedy(model, idx, n, **kwargs):
    return torch.stack(list(model.generate(idx, n, temperature=0, **kwargs)), dim=1)


def test_matches_huggingface_gpt2():
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.GPT2Config(
        n_layer=2,
        n_head=4,
        n_embd=64,
        n_positions=32,
        vocab_size=100,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,  # GPT-2's 50256 is outside this tiny vocab
        attn_implementation="eager",  # the plain softmax(QK^T)V reference
    )
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    model = GPT(ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=32, vocab_size=100, bias=True)).eval()
    model.load_hf_gpt2_state_dict(hf.state_dict())

    idx = torch.randint(0, 100, (3, 32))
    with torch.no_grad():
        expected = hf(input_ids=idx).logits
        logits, _ = model(idx)
    assert logits.shape == expected.shape == (3, 32, 100)
    assert (logits - expected).abs().max().item() < 1e-4
    # the padding rows of the tied embedding/head are zero-filled
    assert model.config.padded_vocab_size == 128
    assert torch.all(model.lm_head.weight[100:] == 0)


def test_hf_load_rejects_a_shape_mismatch():
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=32, n_positions=16, vocab_size=70, bos_token_id=None, eos_token_id=None
    )
    hf = transformers.GPT2LMHeadModel(hf_config)
    with pytest.raises(ValueError, match="transformer.wpe.weight"):
        tiny_model(block_size=8).load_hf_gpt2_state_dict(hf.state_dict())


def test_vocab_size_must_be_set():
    with pytest.raises(AssertionError, match="vocab_size"):
        GPT(ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=8, vocab_size=0))


def test_causal():
    model = tiny_model()
    idx = torch.randint(0, 70, (2, 16))
    with torch.no_grad():
        base, _ = model(idx)
        for t in (0, 5, 15):
            changed = idx.clone()
            changed[:, t] = (changed[:, t] + 1) % 70
            logits, _ = model(changed)
            torch.testing.assert_close(logits[:, :t], base[:, :t], rtol=0, atol=0)
            assert not torch.allclose(logits[:, t], base[:, t])


def test_loss_ignores_minus_one_targets_and_matches_the_logits_path():
    """The fused head+loss gives the loss and the gradients of cross_entropy on the logits."""
    model = tiny_model()
    idx = torch.randint(0, 70, (2, 16))
    targets = torch.randint(0, 70, (2, 16))
    targets[:, :6] = -1  # e.g. the question digits of an addition problem
    logits, loss = model(idx, targets)
    assert logits is None  # training never materialises (B, T, vocab) logits
    assert loss.dtype == torch.float32
    loss.backward()
    fused = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    logits, _ = model(idx)
    expected = torch.nn.functional.cross_entropy(logits[:, 6:].reshape(-1, 70), targets[:, 6:].reshape(-1))
    expected.backward()
    torch.testing.assert_close(loss, expected)
    for name, p in model.named_parameters():
        torch.testing.assert_close(fused[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_padded_vocab_is_never_returned_or_sampled():
    model = tiny_model(vocab_size=70)
    assert model.config.padded_vocab_size == 128
    assert model.lm_head.weight.shape == (128, 32)
    # make the padding rows look irresistible: they must still never come out
    with torch.no_grad():
        model.lm_head.weight[70:] = 10.0 * model.lm_head.weight[:70].abs().max()
    idx = torch.randint(0, 70, (4, 3))
    logits, _ = model(idx)
    assert logits.shape == (4, 3, 70)
    gen = torch.Generator().manual_seed(0)
    for use_cache in (True, False):
        ids = torch.stack(list(model.generate(idx, 40, temperature=2.0, use_cache=use_cache, generator=gen)))
        assert ids.shape == (40, 4)
        assert int(ids.max()) < 70 and int(ids.min()) >= 0


def test_kv_cache_matches_no_cache_past_block_size():
    model = tiny_model(seed=1)
    idx = torch.randint(0, 70, (2, 5))
    # 5 prompt + 30 new tokens: the window slides well past block_size=16
    cached = greedy(model, idx, 30, use_cache=True)
    uncached = greedy(model, idx, 30, use_cache=False)
    assert cached.shape == (2, 30)
    assert torch.equal(cached, uncached)


def test_kv_cache_with_a_prompt_longer_than_block_size():
    model = tiny_model(seed=2)
    idx = torch.randint(0, 70, (1, 20))
    assert torch.equal(greedy(model, idx, 10, use_cache=True), greedy(model, idx, 10, use_cache=False))


def test_forward_cached_logits_match_forward():
    from workbench.engine.model import KVCache

    model = tiny_model(seed=3)
    idx = torch.randint(0, 70, (2, 12))
    cache = KVCache(model.config, 2, idx.device, torch.float32)
    with torch.no_grad():
        full, _ = model(idx)
        torch.testing.assert_close(model.forward_cached(idx[:, :8], torch.arange(8), cache), full[:, 7])
        for t in range(8, 12):
            torch.testing.assert_close(model.forward_cached(idx[:, t : t + 1], torch.tensor([t]), cache), full[:, t])


@pytest.mark.parametrize("bias", [True, False])
def test_num_params_matches_estimate(bias):
    model = tiny_model(bias=bias, vocab_size=100)
    assert model.num_params() == estimate_params(model.config)
    assert model.num_params(non_embedding=False) == estimate_params(model.config) + 16 * 32


def test_init_scales_residual_projections():
    model = tiny_model(n_layer=8, n_embd=128, n_head=4, block_size=8)
    std = model.transformer.h[0].attn.c_proj.weight.std().item()
    assert std == pytest.approx(0.02 / 4, rel=0.1)  # 1/sqrt(2 * 8)
    assert model.transformer.h[0].attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.transformer.wte.weight is model.lm_head.weight


def test_top_k_one_is_greedy():
    model = tiny_model(seed=4)
    idx = torch.randint(0, 70, (3, 4))
    gen = torch.Generator().manual_seed(0)
    top1 = torch.stack(list(model.generate(idx, 20, temperature=1.5, top_k=1, generator=gen)), dim=1)
    assert torch.equal(top1, greedy(model, idx, 20))


def test_tiny_top_p_is_greedy():
    model = tiny_model(seed=4)
    idx = torch.randint(0, 70, (3, 4))
    gen = torch.Generator().manual_seed(0)
    nucleus = torch.stack(list(model.generate(idx, 20, top_p=1e-6, generator=gen)), dim=1)
    assert torch.equal(nucleus, greedy(model, idx, 20))


@pytest.mark.parametrize("kwargs", [{}, {"top_k": 5}, {"top_p": 0.9}, {"top_k": 10, "top_p": 0.8, "use_cache": False}])
def test_seeded_sampling_is_repeatable(kwargs):
    model = tiny_model(seed=5)
    idx = torch.randint(0, 70, (2, 4))

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        return torch.stack(list(model.generate(idx, 25, temperature=1.0, generator=gen, **kwargs)), dim=1)

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


def test_generate_streams_one_token_at_a_time():
    model = tiny_model()
    stream = model.generate(torch.zeros(2, 1, dtype=torch.long), 3, temperature=0)
    first = next(stream)
    assert first.shape == (2,) and first.dtype == torch.long
    assert len(list(stream)) == 2
