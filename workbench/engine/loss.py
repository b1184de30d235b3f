"""The language-modelling loss, fused with the LM head so logits never pile up.

A GPT's last layer turns each position's hidden state (C numbers) into one
logit per vocabulary entry (V numbers; GPT-2: 768 -> 50,304). Materialising
all of them for a (B, T) batch and keeping them alive for the backward pass is
the largest single allocation of training: GPT-2 small at B=16, T=1024 holds
16,384 x 50,304 logits, 1.6 GB in bf16, plus a 3.3 GB float32 copy for the
softmax, plus their gradient of the same size.

`LinearCrossEntropy` computes the head and the loss a chunk of rows at a time,
and works out the gradients of that chunk right away (the gradient of a
softmax cross-entropy is `softmax - one_hot`, known as soon as the softmax
is), so only one chunk's logits exist at any moment. The backward pass then
just scales the stored gradients of the inputs and the head weight. Same
FLOPs as the plain version (the two backward matmuls move into the forward),
no recomputation, float32 softmax as before. This is the idea behind Liger
Kernel's fused linear cross-entropy, written in plain PyTorch.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Rows per chunk are chosen so a chunk's float32 logits take about this many
# elements (2**24: 64 MiB), about the size of the hidden states themselves for
# GPT-2 (333 rows of 50,304), as Liger Kernel sizes its chunks: big enough for
# efficient matmuls, small next to everything else in memory. Small
# vocabularies (chars, digits) fit a whole batch in one chunk.
CHUNK_ELEMENTS = 1 << 24


FP16_MAX_ROWS = 1024


def chunk_rows(padded_vocab: int) -> int:
    return max(256, CHUNK_ELEMENTS // padded_vocab)


def _chunk_logits(x: Tensor, weight: Tensor, vocab_size: int) -> Tensor:
    """float32 logits of a chunk over the padded vocabulary; padding columns -inf.

    The matmul keeps the padded width (a multiple of 64, fast); the padding can
    never win a softmax because its logits are -inf.
    """
    logits = (x @ weight.t()).float()
    if weight.size(0) > vocab_size:
        logits[:, vocab_size:] = float("-inf")
    return logits


def _matmul_dtype(x: Tensor) -> torch.dtype:
    """The dtype autocast would run the head's matmuls in (x's own without autocast)."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


class LinearCrossEntropy(torch.autograd.Function):
    """mean cross-entropy of softmax(x @ weight.T) against targets; -1 targets are ignored."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, targets: Tensor, vocab_size: int) -> Tensor:
        # x (N, C) hidden states, weight (V_padded, C) the LM head, targets (N,)
        rows = chunk_rows(weight.size(0))
        dtype = _matmul_dtype(x)
        # Cast once, not per chunk: autocast would convert the whole (V, C) weight again for every matmul.
        w, xc = weight.to(dtype), x.to(dtype)
        if dtype == torch.float16:
            # grad_w sums a chunk's rows in fp16 before it reaches float32, and is not
            # loss-scaled: 1024 rows of |grad| <= 1 stay far below fp16's 65,504.
            rows = min(rows, FP16_MAX_ROWS)
        grad_x = torch.empty_like(x)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        loss_sum = torch.zeros((), dtype=torch.float32, device=x.device)
        counted = targets != -1
        for start in range(0, x.size(0), rows):
            xs, ts, keep = xc[start : start + rows], targets[start : start + rows], counted[start : start + rows]
            logits = _chunk_logits(xs, w, vocab_size)
            lse = torch.logsumexp(logits, dim=-1)
            picked = ts.clamp(min=0)[:, None]  # -1 -> 0, masked out below
            loss_sum += ((lse - logits.gather(1, picked).squeeze(1)) * keep).sum()
            # d(loss)/d(logits) = softmax - one_hot(target), zero for ignored rows;
            # computed in place: one chunk-sized buffer at a time
            grad = logits.sub_(lse[:, None]).exp_()
            grad.scatter_add_(1, picked, torch.full_like(lse, -1.0)[:, None])
            grad = grad.mul_(keep[:, None]).to(dtype)
            grad_x[start : start + rows] = grad @ w
            grad_w += (grad.t() @ xs).float()
        count = counted.sum()
        ctx.save_for_backward(grad_x, grad_w, count.clamp(min=1))
        return loss_sum / count  # no counted targets: nan, as F.cross_entropy

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        grad_x, grad_w, count = ctx.saved_tensors
        scale = grad_loss / count
        return grad_x * scale.to(grad_x.dtype), grad_w * scale, None, None


def linear_cross_entropy(x: Tensor, weight: Tensor, targets: Tensor, vocab_size: int) -> Tensor:
    """Loss of the LM head on hidden states x (..., C) against targets (...), without logits.

    With gradients enabled it runs `LinearCrossEntropy`; without (evals) it only
    sums the loss, chunk by chunk.
    """
    x, targets = x.reshape(-1, x.size(-1)), targets.reshape(-1)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return LinearCrossEntropy.apply(x, weight, targets, vocab_size)
    dtype = _matmul_dtype(x)
    x, weight = x.to(dtype), weight.to(dtype)  # once, not per chunk
    total = torch.zeros((), dtype=torch.float32, device=x.device)
    counted = targets != -1
    rows = chunk_rows(weight.size(0))
    for start in range(0, x.size(0), rows):
        stop = start + rows
        logits = _chunk_logits(x[start:stop], weight, vocab_size)
        nll = torch.logsumexp(logits, -1) - logits.gather(1, targets[start:stop].clamp(min=0)[:, None]).squeeze(1)
        total += (nll * counted[start:stop]).sum()
    return total / counted.sum()
