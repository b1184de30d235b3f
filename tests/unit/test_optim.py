"""gptbench's Muon (same-shaped matrices orthogonalised as one stack) against torch.optim.Muon (matrix by
matrix): the same weights, the same losses, the same state; and which optimizer takes which weight."""

import io

import pytest
import torch

from workbench.config import ModelConfig, TrainConfig
from workbench.engine.model import GPT
from workbench.engine.optim import Muon, MuonAdamW, make_optimizer

MODERN = dict(position="rope", norm="rmsnorm", qk_norm=True, activation="relu2", logit_softcap=15.0)


def tiny_modern(tie_embeddings: bool = False, seed: int = 0) -> GPT:
    # n_embd 32: c_attn 96x32 and c_fc 128x32 are tall, mlp.c_proj 32x128 wide, attn.c_proj square
    torch.manual_seed(seed)
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=70, bias=False, **MODERN)
    cfg.tie_embeddings = tie_embeddings
    return GPT(cfg).train()


def with_torch_muon(opt: MuonAdamW) -> MuonAdamW:
    """The same optimizer with torch.optim.Muon's per-matrix step in place of the stacked one."""
    return MuonAdamW(torch.optim.Muon(opt.muon.param_groups), opt.adamw)


def train(model: GPT, opt, steps: int, seed: int = 1) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        # a pattern to learn: shifted runs of 17 consecutive tokens
        data = (torch.arange(17) + torch.randint(0, 50, (8, 1), generator=gen)) % 70
        _, loss = model(data[:, :-1], data[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def assert_same_weights(a: GPT, b: GPT) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


def test_the_stacked_newton_schulz_gives_torchs_per_matrix_update():
    config = TrainConfig(optimizer="muon", lr=3e-3, muon_lr=0.02)
    ours, theirs = tiny_modern(), tiny_modern()
    opt = make_optimizer(ours, config, "cpu")
    assert isinstance(opt.muon, Muon) and len({p.shape for p in opt.muon.param_groups[0]["params"]}) == 4
    reference = with_torch_muon(make_optimizer(theirs, config, "cpu"))
    assert train(ours, opt, 6) == pytest.approx(train(theirs, reference, 6), rel=0, abs=1e-6)
    assert_same_weights(ours, theirs)
    # Muon moved the matrices by its lr-sized steps: the comparison is of real updates
    assert (ours.transformer.h[0].mlp.c_fc.weight - tiny_modern().transformer.h[0].mlp.c_fc.weight).abs().max() > 1e-3


@pytest.mark.parametrize("nesterov,adjust_lr_fn", [(False, None), (True, "match_rms_adamw")])
def test_every_setting_of_torchs_muon_is_followed(nesterov, adjust_lr_fn):
    torch.manual_seed(0)
    shapes = [(48, 16), (16, 48), (16, 16), (48, 16)]
    start = [torch.randn(s) for s in shapes]
    ours = [w.clone().requires_grad_() for w in start]
    theirs = [w.clone().requires_grad_() for w in start]
    settings = dict(lr=0.05, weight_decay=0.1, momentum=0.9, nesterov=nesterov, ns_steps=4, adjust_lr_fn=adjust_lr_fn)
    opts = Muon(ours, **settings), torch.optim.Muon(theirs, **settings)
    for _ in range(3):
        grads = [torch.randn(s) for s in shapes]
        for params, opt in zip((ours, theirs), opts):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_a_state_saved_by_torchs_muon_resumes_in_ours_and_back():
    """Checkpoints from before the stacked step (torch.optim.Muon's state) continue exactly, and the other way."""
    config = TrainConfig(optimizer="muon", lr=3e-3, muon_lr=0.02)
    ours, theirs = tiny_modern(), tiny_modern()
    opt_ours = make_optimizer(ours, config, "cpu")
    opt_theirs = with_torch_muon(make_optimizer(theirs, config, "cpu"))
    train(theirs, opt_theirs, 3)
    ours.load_state_dict(theirs.state_dict())
    buffer = io.BytesIO()  # through bytes, as in a checkpoint: no tensor shared between the two
    torch.save(opt_theirs.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert set(saved["muon"]["state"][0]) == {"momentum_buffer"}
    opt_ours.load_state_dict(saved)
    assert opt_ours.state_dict()["muon"]["state"].keys() == saved["muon"]["state"].keys()
    assert train(ours, opt_ours, 3, seed=2) == pytest.approx(train(theirs, opt_theirs, 3, seed=2), rel=0, abs=1e-6)
    assert_same_weights(ours, theirs)


@pytest.mark.parametrize("tie_embeddings", [True, False], ids=["tied", "untied"])
def test_the_embedding_and_head_go_to_adamw_once_and_the_blocks_matrices_to_muon(tie_embeddings):
    model = tiny_modern(tie_embeddings)
    opt = make_optimizer(model, TrainConfig(optimizer="muon", lr=1e-3, muon_lr=0.02), "cpu")
    names = {p: n for n, p in model.named_parameters()}
    muon = [names[p] for p in opt.muon.param_groups[0]["params"]]
    adamw = [names[p] for g in opt.adamw.param_groups for p in g["params"]]
    assert set(muon) == {n for n, p in model.named_parameters() if n.startswith("transformer.h.") and p.dim() == 2}
    head = model.lm_head.weight
    assert (head is model.transformer.wte.weight) == tie_embeddings
    # a tied weight is one tensor: in AdamW's decayed group once, under the embedding's name
    in_adamw = [p for g in opt.adamw.param_groups for p in g["params"] if p is head]
    assert len(in_adamw) == 1 and names[head] == ("transformer.wte.weight" if tie_embeddings else "lm_head.weight")
    assert len(muon) + len(adamw) == len(set(muon + adamw)) == len(list(model.parameters()))
    losses = train(model, opt, 30)
    assert losses[-1] < losses[0] - 0.5
