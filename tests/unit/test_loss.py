"""The fused LM-head + cross-entropy (engine/loss.py) against the plain computation."""

import pytest
import torch
import torch.nn.functional as F

from workbench.engine import loss as fused_loss


def reference(x, w, t, vocab):
    return F.cross_entropy((x @ w.t())[:, :vocab].float(), t, ignore_index=-1)


@pytest.mark.parametrize("vocab,padded", [(65, 128), (1000, 1024)])
def test_chunked_loss_and_gradients_match_cross_entropy(monkeypatch, vocab, padded):
    # 256 rows per chunk: a 700-row batch is cut into three uneven chunks
    monkeypatch.setattr(fused_loss, "CHUNK_ELEMENTS", 256 * padded)
    torch.manual_seed(0)
    x = torch.randn(700, 32, requires_grad=True)
    w = torch.randn(padded, 32, requires_grad=True)
    t = torch.randint(0, vocab, (700,))
    t[:50] = -1
    loss = fused_loss.linear_cross_entropy(x, w, t, vocab)
    (loss * 3).backward()  # a scaled loss scales the stored gradients too
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    expected = reference(x, w, t, vocab)
    (expected * 3).backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)
    assert torch.all(gw[vocab:] == 0)  # padding rows are no token: no gradient
    with torch.no_grad():  # evals: the loss alone, chunk by chunk
        torch.testing.assert_close(fused_loss.linear_cross_entropy(x, w, t, vocab), expected)


def test_bf16_autocast_tracks_float32():
    torch.manual_seed(0)
    x = torch.randn(300, 64, requires_grad=True)
    w = torch.randn(128, 64, requires_grad=True) * 0.1
    w.retain_grad()
    t = torch.randint(0, 100, (300,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fused_loss.linear_cross_entropy(x, w, t, 100)
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.float32 and w.grad.dtype == torch.float32
    expected = reference(x.detach(), w.detach(), t, 100)
    assert abs(loss.item() - expected.item()) < 2e-2


def test_no_counted_target_gives_nan_like_cross_entropy():
    x, w = torch.randn(4, 8), torch.randn(64, 8)
    t = torch.full((4,), -1)
    assert torch.isnan(fused_loss.linear_cross_entropy(x, w, t, 10))
    assert torch.isnan(reference(x, w, t, 10))
