"""A decoding step compiled by inductor (a static KV cache, a tensor position) decodes what eager decoding does."""

import pytest
import torch

from workbench.config import ModelConfig
from workbench.engine.model import GPT

MODERN = dict(
    position="rope", norm="rmsnorm", qk_norm=True, activation="relu2", tie_embeddings=False, logit_softcap=15.0
)


def greedy(model, idx, n, **kwargs):
    return torch.stack(list(model.generate(idx, n, temperature=0, **kwargs)), dim=1)


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
