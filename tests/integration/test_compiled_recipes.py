"""torch.compile and the modern options: the training forward+backward traces as one graph (the trainer
compiles with fullgraph=True on CUDA), and a decoding step compiled by inductor (a static KV cache, a
tensor position) decodes what eager decoding does."""

import pytest
import torch

from workbench.config import ModelConfig
from workbench.engine.model import GPT

MODERN = dict(
    position="rope", norm="rmsnorm", qk_norm=True, activation="relu2", tie_embeddings=False, logit_softcap=15.0
)


def greedy(model, idx, n, **kwargs):
    return torch.stack(list(model.generate(idx, n, temperature=0, **kwargs)), dim=1)


def test_every_modern_option_trains_as_one_graph():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=70, **MODERN))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")  # a graph break raises
    x = torch.randint(0, 70, (2, 16))
    _, loss = compiled(x, x)
    loss.backward()
    _, expected = model(x, x)
    torch.testing.assert_close(loss, expected)
    assert model.lm_head.weight.grad is not None and model.transformer.h[0].attn.c_attn.weight.grad is not None


@pytest.mark.parametrize("options", [{}, MODERN], ids=["classic", "modern"])
def test_compiled_decoding_gives_the_eager_greedy_tokens(options):
    """One decoding step compiled with inductor (a static cache, a tensor position) == eager decoding,
    past block_size (the window slides and re-prefills), and a second request reuses the compiled step."""
    torch.manual_seed(7)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=70, **options)).eval()
    idx = torch.randint(0, 70, (1, 4))
    compiled = model.decoder(1, idx.device, torch.float32, compile=True)
    assert torch.equal(greedy(model, idx, 30, decoder=compiled), greedy(model, idx, 30))
    other = torch.randint(0, 70, (1, 7))
    assert torch.equal(greedy(model, other, 12, decoder=compiled), greedy(model, other, 12))

    # seeded sampling walks varied paths (a random model's greedy path soon loops on a token or two)
    def sampled(**kwargs):
        gen = torch.Generator().manual_seed(0)
        return torch.stack(list(model.generate(idx, 30, temperature=1.0, generator=gen, **kwargs)), dim=1)

    eager = sampled()
    assert len(set(eager[0].tolist())) > 10 and torch.equal(sampled(decoder=compiled), eager)


def test_the_sampler_streams_the_same_text_with_a_warmed_up_compiled_decoder():
    from workbench.config import TrainConfig
    from workbench.data.tokenizers import CharTokenizer
    from workbench.engine.device import setup_device
    from workbench.engine.sampler import SampleRequest, stream_sample, warm_up
    from workbench.engine.tasks.perplexity import Perplexity

    torch.manual_seed(3)
    tokenizer = CharTokenizer("".join(chr(c) for c in range(48, 48 + 70)))
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=70, **MODERN)).eval()
    torch.nn.init.normal_(model.lm_head.weight, std=0.3)
    setup = setup_device(TrainConfig(device="cpu", compile=False))
    compiled = model.decoder(1, setup.device, setup.compute_dtype, compile=True)
    warm_up(compiled, setup)

    def answer(decoder) -> list[dict]:
        events = []
        req = SampleRequest(prompt="0123", max_new_tokens=24, temperature=1.0, top_k=None, num_samples=2, seed=5)
        stream_sample(model, tokenizer, Perplexity(tokenizer), req, setup, lambda e, **f: events.append(f), decoder)
        return [e["full_text"] for e in events if e["done"]]

    texts = answer(None)
    assert len(texts) == 2 and all(len(t) == 24 for t in texts) and texts[0] != texts[1]
    assert answer(compiled) == texts
