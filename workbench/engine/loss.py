"""The language-modelling loss, fused with the LM head so logits never pile up.

A GPT's last layer turns each position's hidden state (C numbers) into one
logit per vocabulary entry (V numbers; GPT-2: 768 -> 50,304). Materialising
all of them for a (B, T) batch and keeping them alive for the backward pass is
the largest single allocation of training: GPT-2 small at B=16, T=1024 holds
16,384 x 50,304 logits, 1.6 GB in bf16, plus a 3.3 GB float32 copy for the
softmax, plus their gradient of the same size.

`linear_cross_entropy` computes the head and the loss a chunk of rows at a
time, and works out the gradients of that chunk right away (the gradient of a
softmax cross-entropy is `softmax - one_hot`, known as soon as the softmax
is), so only one chunk's logits exist at any moment. The backward pass then
just scales the stored gradients of the inputs and the head weight. Same
FLOPs as the plain version (the two backward matmuls move into the forward),
no recomputation, float32 softmax as before. This is the idea behind Liger
Kernel's fused linear cross-entropy, written in plain PyTorch.

Between its two matmuls a chunk is memory-bound: its cost is the number of
passes over its (rows, V) float32 logits. The matmul writes them; one
log_softmax overwrites them with log-probabilities (the loss is read at the
targets); one exp turns those into the gradient, written in the matmul's
dtype, with `p - 1` at the targets patched in afterwards (rows, not a pass).
Rows that do not count are zeroed in the (N, C) input instead of in every
chunk. About 20 bytes per logit in all (bench/loss_chunk.py counts them).
`model.logit_softcap` happens here too: the logits are cap * tanh(z / cap)
and the gradient goes through 1 - tanh^2: about three passes more.

Two things make it fit a GPU:
- The chunk loop is one custom operator (`workbench::linear_cross_entropy`,
  with its autograd and a shape-only "fake" version registered), so
  `torch.compile` sees one opaque call instead of unrolling the loop into
  hundreds of chunk bodies: compile time does not grow with the batch.
- On CUDA, chunks are thousands of rows (a multiple of 128), and the matmuls
  write float32 themselves (cuBLAS with a float32 output, `out_dtype`): the
  logits, and the head weight's gradient, accumulated in place, not through
  a bf16 product and a float32 copy of it per chunk. Each chunk reads and
  writes the whole (V, C) float32 gradient once (309 MB for GPT-2), so fewer,
  larger chunks move less memory.

`train.loss=plain` keeps the textbook path (full logits, `F.cross_entropy`)
for comparison; `auto` picks per device what was measured faster (below).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

# CPU and MPS: rows per chunk are chosen so a chunk's float32 logits take about
# this many elements (2**24: 64 MiB), about the size of the hidden states
# themselves for GPT-2 (333 rows of 50,304), as Liger Kernel sizes its chunks:
# big enough for efficient matmuls, small next to everything else in memory.
# Small vocabularies (chars, digits) fit a whole batch in one chunk.
CHUNK_ELEMENTS = 1 << 24

# CUDA: the memory budget of one chunk's float32 logits, 2**28 elements (1 GiB;
# 5,248 rows of GPT-2's 50,304). A micro-batch that fits is one chunk; a larger
# one is cut into equal chunks of a multiple of 128 rows (tensor-core tiles).
# Besides the logits a chunk holds their gradient in bf16 (half as much again):
# 1.5 GiB at most, small next to the activations of such a batch.
CUDA_CHUNK_ELEMENTS = 1 << 28
CUDA_ROW_MULTIPLE = 128

# Without a float32-output matmul, grad_w sums a chunk's rows in fp16 before it
# reaches float32, and is not loss-scaled: 1024 rows of |grad| <= 1 stay far
# below fp16's 65,504.
FP16_MAX_ROWS = 1024

# What train.loss=auto runs on CUDA. No GPU has timed the two yet: fused is the
# one that cannot run out of memory on logits. bench/gpu_leg.sh times fused and
# plain on gpt2-124m; set this to the faster one it reports (bench/NOTES.md, "GPU").
CUDA_AUTO_LOSS = "fused"


def resolve_loss(requested: str, device_kind: str) -> str:
    """The loss a run uses: train.loss, with auto decided per device."""
    if requested != "auto":
        return requested
    return CUDA_AUTO_LOSS if device_kind == "cuda" else "fused"


def chunk_rows(n_rows: int, padded_vocab: int, device_kind: str) -> int:
    """Rows per chunk for a batch of n_rows hidden states over padded_vocab logits."""
    if device_kind != "cuda":
        return max(256, CHUNK_ELEMENTS // padded_vocab)
    most = max(CUDA_ROW_MULTIPLE, CUDA_CHUNK_ELEMENTS // padded_vocab // CUDA_ROW_MULTIPLE * CUDA_ROW_MULTIPLE)
    if n_rows <= most:
        return n_rows  # the whole micro-batch in one chunk
    chunks = math.ceil(n_rows / most)
    # equal chunks (no small last one), rounded up to whole tiles: still <= most
    return math.ceil(n_rows / chunks / CUDA_ROW_MULTIPLE) * CUDA_ROW_MULTIPLE


def _chunk_log_probs(
    x: Tensor, weight: Tensor, vocab_size: int, float32_out: bool, softcap: float = 0.0, keep_tanh: bool = False
) -> tuple[Tensor, Tensor | None]:
    """float32 log-softmax of a chunk's logits over the padded vocabulary, and tanh(z / cap) if asked.

    The logits are written once, by the matmul, and every step after works in
    that buffer: the chunk is memory-bound between its matmuls, and each pass
    over (rows, V) float32 numbers costs as much as the others. The matmul
    keeps the padded width (a multiple of 64, fast); the padding gets -inf, so
    it never wins a softmax. float32_out: the 16-bit matmul writes float32
    itself (no 16-bit copy of the logits to convert).

    softcap > 0: the logits are cap * tanh(z / cap) (model.logit_softcap);
    keep_tanh: tanh(z / cap) is returned too, for the gradient through the cap
    (it costs a second chunk-sized buffer).
    """
    z = torch.mm(x, weight.t(), out_dtype=torch.float32) if float32_out else (x @ weight.t()).float()
    tanh = None
    if softcap:
        z = z.mul_(1 / softcap).tanh_()
        if keep_tanh:
            tanh, z = z, z * softcap
        else:
            z = z.mul_(softcap)
    if weight.size(0) > vocab_size:
        z[:, vocab_size:] = float("-inf")
    # one kernel, rows read while they sit in cache; written over its input
    return torch.log_softmax(z, dim=-1, out=z), tanh


def _softmax_minus_one_hot(log_probs: Tensor, picked: Tensor, tanh: Tensor | None, dtype: torch.dtype) -> Tensor:
    """d(summed loss)/d(logits) of a chunk, in dtype, from its log-probabilities (which it overwrites).

    softmax - one_hot(target): exp of the log-probabilities, and at each target
    p - 1 = expm1(log p), exact even where p is close to 1. Not yet divided by
    the count (backward does it): fp16 would flush p/count to zero. Soft-capped
    (tanh given), times the cap's slope 1 - tanh^2.
    """
    at_target = torch.expm1(log_probs.gather(1, picked))
    if tanh is None and dtype != log_probs.dtype:
        # one pass: read float32, write dtype (on CUDA; a CPU converts through a temporary)
        grad = torch.exp(log_probs, out=torch.empty_like(log_probs, dtype=dtype))
    else:
        grad = log_probs.exp_()
    grad.scatter_(1, picked, at_target.to(grad.dtype))
    if tanh is not None:
        # grad * (1 - tanh^2) in one pass: autograd's own kernel for tanh, writing dtype
        out = grad if dtype == grad.dtype else torch.empty_like(grad, dtype=dtype)
        grad = torch.ops.aten.tanh_backward.grad_input(grad, tanh, grad_input=out)
    return grad


def _matmul_dtype(x: Tensor) -> torch.dtype:
    """The dtype autocast would run the head's matmuls in (x's own without autocast)."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


@functools.cache
def _matmul_writes_float32(device: torch.device, dtype: torch.dtype) -> bool:
    """Can a 16-bit matmul write float32, and add its product into a float32 tensor, itself here?

    (mm's and addmm's out_dtype.) CUDA has it in recent torch; asked once per
    device and dtype with a tiny product, so an older torch or another device
    takes the 16-bit-product path.
    """
    if device.type != "cuda" or dtype not in (torch.bfloat16, torch.float16):
        return False
    a = torch.ones(2, 2, device=device, dtype=dtype)
    try:
        acc = torch.mm(a, a, out_dtype=torch.float32)
        torch.addmm(acc, a, a, out_dtype=torch.float32, out=acc)
    except (RuntimeError, TypeError):
        return False
    return acc.dtype == torch.float32 and bool((acc == 4).all())


def _add_product(acc: Tensor, a: Tensor, b: Tensor, float32_out: bool) -> None:
    """acc (float32) += a @ b."""
    if a.dtype == acc.dtype:
        acc.addmm_(a, b)
    elif float32_out:
        torch.addmm(acc, a, b, out_dtype=torch.float32, out=acc)
    else:
        acc += (a @ b).float()


@torch.library.custom_op("workbench::linear_cross_entropy", mutates_args=())
def _fused(
    x: Tensor, weight: Tensor, targets: Tensor, vocab_size: int, dtype: torch.dtype, softcap: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(mean loss, the summed loss's gradient for x, and its float32 gradient for weight), a chunk at a time.

    x (N, C) hidden states, weight (V_padded, C) the LM head, targets (N,) with
    -1 for rows that do not count; the matmuls run in `dtype`; softcap > 0:
    the logits are soft-capped.
    """
    with torch.autocast(x.device.type, enabled=False):  # the dtypes below are chosen by hand
        counted = targets != -1
        # Cast once, not per chunk: autocast would convert the whole (V, C) weight again for every matmul.
        # Rows that do not count are zeroed once here, (N, C), instead of their gradient in every
        # (rows, V) chunk: their logits are then all 0, and they add nothing to the head's gradient.
        w, xc = weight.to(dtype), x.to(dtype).masked_fill(~counted[:, None], 0)
        float32_out = _matmul_writes_float32(x.device, dtype)
        rows = chunk_rows(x.size(0), weight.size(0), x.device.type)
        if dtype == torch.float16 and not float32_out:
            rows = min(rows, FP16_MAX_ROWS)
        grad_x = torch.empty_like(x)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        loss_sum = torch.zeros((), dtype=torch.float32, device=x.device)
        picked_all = targets.clamp(min=0)[:, None]  # -1 -> 0: those rows count for nothing
        for start in range(0, x.size(0), rows):
            stop = start + rows
            xs, picked = xc[start:stop], picked_all[start:stop]
            log_probs, tanh = _chunk_log_probs(xs, w, vocab_size, float32_out, softcap, keep_tanh=True)
            loss_sum -= (log_probs.gather(1, picked).squeeze(1) * counted[start:stop]).sum()
            grad = _softmax_minus_one_hot(log_probs, picked, tanh, dtype)
            grad_x[start:stop] = grad @ w
            _add_product(grad_w, grad.t(), xs, float32_out)
        grad_x.masked_fill_(~counted[:, None], 0)
        return loss_sum / counted.sum(), grad_x, grad_w  # no counted targets: nan, as F.cross_entropy


@_fused.register_fake
def _(x, weight, targets, vocab_size, dtype, softcap):
    return x.new_empty((), dtype=torch.float32), torch.empty_like(x), torch.empty_like(weight, dtype=torch.float32)


def _save_gradients(ctx, inputs, output) -> None:
    _, grad_x, grad_w = output
    # The gradients are outputs only to reach backward: nothing flows back into them, so autograd
    # must neither track them nor build zero (N, C) and (V, C) tensors for them in backward.
    ctx.mark_non_differentiable(grad_x, grad_w)
    ctx.set_materialize_grads(False)
    counted = (inputs[2] != -1).sum().clamp(min=1)
    ctx.save_for_backward(grad_x, grad_w, counted)
    ctx.weight_dtype = inputs[1].dtype


def _scale_gradients(ctx, grad_loss, _grad_x, _grad_w):
    """The stored gradients of the summed loss, scaled to the mean and by the incoming gradient."""
    grad_x, grad_w, counted = ctx.saved_tensors
    scale = grad_loss / counted
    return grad_x * scale.to(grad_x.dtype), (grad_w * scale).to(ctx.weight_dtype), None, None, None, None


_fused.register_autograd(_scale_gradients, setup_context=_save_gradients)


@torch.library.custom_op("workbench::linear_cross_entropy_value", mutates_args=())
def _loss_only(
    x: Tensor, weight: Tensor, targets: Tensor, vocab_size: int, dtype: torch.dtype, softcap: float
) -> Tensor:
    """The mean loss alone (evals), a chunk at a time; one opaque call for torch.compile too."""
    with torch.autocast(x.device.type, enabled=False):
        x, weight = x.to(dtype), weight.to(dtype)  # once, not per chunk
        float32_out = _matmul_writes_float32(x.device, dtype)
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        counted = targets != -1
        picked = targets.clamp(min=0)[:, None]
        rows = chunk_rows(x.size(0), weight.size(0), x.device.type)
        for start in range(0, x.size(0), rows):
            stop = start + rows
            log_probs, _ = _chunk_log_probs(x[start:stop], weight, vocab_size, float32_out, softcap)
            total -= (log_probs.gather(1, picked[start:stop]).squeeze(1) * counted[start:stop]).sum()
        return total / counted.sum()


@_loss_only.register_fake
def _(x, weight, targets, vocab_size, dtype, softcap):
    return x.new_empty((), dtype=torch.float32)


def linear_cross_entropy(x: Tensor, weight: Tensor, targets: Tensor, vocab_size: int, softcap: float = 0.0) -> Tensor:
    """Loss of the LM head on hidden states x (..., C) against targets (...), without logits.

    softcap > 0: the logits are cap * tanh(logits / cap) (model.logit_softcap).
    With gradients enabled it computes them as it goes (one `_fused` call);
    without (evals) it only sums the loss, chunk by chunk.
    """
    x, targets = x.reshape(-1, x.size(-1)), targets.reshape(-1)
    dtype = _matmul_dtype(x)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _fused(x, weight, targets, vocab_size, dtype, softcap)[0]
    return _loss_only(x, weight, targets, vocab_size, dtype, softcap)


def plain_cross_entropy(logits: Tensor, targets: Tensor, vocab_size: int) -> Tensor:
    """train.loss=plain: F.cross_entropy over the full logits (B, T, V_padded), in float32."""
    logits = logits[..., :vocab_size].float()
    return F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1), ignore_index=-1)
