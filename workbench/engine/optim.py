"""AdamW (or Muon with AdamW) and the learning-rate schedules, as in GPT-2/3, nanoGPT and MiniCPM (WSD)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import torch

from ..config import TrainConfig


def make_optimizer(model: torch.nn.Module, train: TrainConfig, device_kind: str) -> torch.optim.Optimizer | MuonAdamW:
    """AdamW with weight decay on matrices only, or (train.optimizer=muon) Muon for the hidden matrices.

    Every 2-D parameter (linear weights, embeddings) decays; biases and
    norm gains don't: shrinking them toward zero only hurts.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # Muon orthogonalises the update of a weight matrix that maps one hidden
    # space to another; the embedding (a lookup), the head (a classifier) and
    # vectors keep AdamW, as in the Muon write-up and the GPT-2 speedrun.
    hidden = [p for n, p in named if train.optimizer == "muon" and p.dim() == 2 and n.startswith("transformer.h.")]
    ids = {id(p) for p in hidden}
    rest = [p for _, p in named if id(p) not in ids]
    groups = [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": train.weight_decay},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
    ]
    # The fused kernel updates all parameters in a few launches instead of a
    # few per parameter: a measurable win at every model size on CUDA, and on
    # the CPU (a vectorised loop instead of many small foreach ops).
    adamw = torch.optim.AdamW(
        groups, lr=train.lr, betas=(train.beta1, train.beta2), fused=device_kind in ("cuda", "cpu")
    )
    if not hidden:
        return adamw
    # Both apply decoupled decay as p *= 1 - lr * weight_decay: scaled so that a
    # matrix shrinks by as much per step under Muon as it would under AdamW.
    muon = Muon(hidden, lr=train.muon_lr, weight_decay=train.weight_decay * train.lr / train.muon_lr)
    return MuonAdamW(muon, adamw)


class Muon(torch.optim.Muon):
    """torch.optim.Muon's update, with the matrices of one shape orthogonalised together.

    torch runs Newton-Schulz matrix by matrix: 15 small matmuls per matrix, and
    the momentum, decay and update as a few elementwise ops per matrix. Here the
    momentum and decay are foreach ops over all matrices, and the matrices of
    one shape (a tall one transposed, as Newton-Schulz takes it) are stacked and
    orthogonalised by batched matmuls, as modded-nanogpt does: 3 stacks instead
    of 16 matrices on shakespeare-char's CPU profile, and one launch per stack
    on a GPU. The same arithmetic in the same dtype (bf16) as torch's, the same
    state (checkpoints load either way); tests/unit/test_optim.py holds it
    to torch's per-matrix update, bench/NOTES.md has what it saves.
    """

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            bufs = []
            for p in params:
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                bufs.append(self.state[p]["momentum_buffer"])
            momentum, lr = group["momentum"], group["lr"]
            torch._foreach_lerp_(bufs, grads, 1 - momentum)
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
            # Newton-Schulz works on wide matrices: a tall one goes in transposed.
            stacks = defaultdict(list)
            for p, g, buf in zip(params, grads, bufs):
                tall = p.size(0) > p.size(1)
                stacks[(p.mT if tall else p).shape].append((p, g, buf, tall))
            for shape, members in stacks.items():
                # the update, written straight into a bf16 stack: computed in float32, rounded once, as torch's
                wide = torch.empty((len(members), *shape), dtype=torch.bfloat16, device=params[0].device)
                for (_, g, buf, tall), w in zip(members, wide):
                    out = w.mT if tall else w
                    if group["nesterov"]:
                        torch.lerp(g, buf, momentum, out=out)
                    else:
                        out.copy_(buf)
                ortho = zeropower_via_newtonschulz(wide, group["ns_coefficients"], group["ns_steps"], group["eps"])
                for (p, *_, tall), o in zip(members, ortho):
                    p.add_(o.mT if tall else o, alpha=-adjusted_lr(lr, group["adjust_lr_fn"], p.shape))
        return loss


def zeropower_via_newtonschulz(x: torch.Tensor, abc: tuple[float, float, float], steps: int, eps: float):
    """torch.optim.Muon's quintic Newton-Schulz on a bf16 stack of wide matrices (batch, m, n), m <= n."""
    a, b, c = abc
    # a spectral norm of at most 1, matrix by matrix
    x = x / torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """torch.optim.Muon's per-shape rate: "original" (Keller Jordan's) scales by sqrt(max(1, rows/cols))."""
    rows, cols = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(rows, cols))
    return lr * math.sqrt(max(1, rows / cols))


class MuonAdamW:
    """Muon and AdamW stepped as one optimizer: what the trainer, GradScaler and checkpoints use of one."""

    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW):
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict]:
        return self.muon.param_groups + self.adamw.param_groups

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"muon", "adamw"}:
            raise ValueError("the checkpoint's optimizer state is AdamW's alone; this run uses Muon")
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def describe_optimizer(optimizer: torch.optim.Optimizer | MuonAdamW) -> str:
    """What run_started and the run header say: "adamw", or "muon (24 matrices) + adamw (13 tensors)"."""
    if isinstance(optimizer, MuonAdamW):
        muon = sum(len(g["params"]) for g in optimizer.muon.param_groups)
        adamw = sum(len(g["params"]) for g in optimizer.adamw.param_groups)
        return f"muon ({muon} matrices) + adamw ({adamw} tensors)"
    return "adamw"


def set_lr(optimizer: torch.optim.Optimizer | MuonAdamW, lr: float, train: TrainConfig) -> None:
    """This step's learning rates: lr for AdamW's groups; Muon's follow the same schedule, scaled to muon_lr."""
    for group in optimizer.param_groups:
        group["lr"] = lr * train.muon_lr / train.lr if "ns_steps" in group else lr


@dataclass
class Schedule:
    """The learning rate of every step: linear warmup, then one of three shapes.

    - cosine: decay from lr to min_lr along half a cosine, ending at max_steps.
    - wsd (warmup-stable-decay): lr until the last `decay_fraction` of max_steps,
      then a linear decay to min_lr. A longer run just stays stable for longer.
    - constant: lr after warmup.

    A cosine run extended on resume (a larger max_steps) must not jump back up
    the curve. `anchor` = (step, lr) restarts the decay from where the run
    was: from lr_anchor at step_anchor down to min_lr at the new max_steps.
    The anchor is stored in the checkpoint so later resumes follow the same curve.

    Its state (a row of train_state.py) is the anchor and the max_steps it decays to.
    """

    train: TrainConfig
    anchor: tuple[int, float] | None = None
    saved_max_steps: int | None = None  # the budget of the loaded state (load_state_dict)

    def state_dict(self) -> dict:
        return {"anchor": self.anchor, "max_steps": self.train.max_steps}

    def load_state_dict(self, state: dict) -> None:
        self.anchor = tuple(state["anchor"]) if state["anchor"] else None
        self.saved_max_steps = state["max_steps"]

    def continue_at(self, step: int) -> str | None:
        """Resumed at `step` with another max_steps: a cosine decay continues from where it was (and says so)."""
        if self.saved_max_steps is None:
            return None
        anchor = self.extended(step, self.saved_max_steps).anchor
        if anchor == self.anchor:
            return None
        self.anchor = anchor
        return (
            f"max_steps {self.saved_max_steps} -> {self.train.max_steps}: the cosine decay continues from "
            f"lr {anchor[1]:.3g} at step {step} to min_lr at step {self.train.max_steps}"
        )

    def lr(self, step: int) -> float:
        t = self.train
        if step < t.warmup_steps:
            return t.lr * (step + 1) / (t.warmup_steps + 1)
        if t.schedule == "constant":
            return t.lr
        if step >= t.max_steps:
            return t.min_lr
        if t.schedule == "wsd":
            decay_start = t.max_steps - max(1, round(t.decay_fraction * t.max_steps))
            if step < decay_start:
                return t.lr
            return t.lr + (t.min_lr - t.lr) * (step - decay_start) / (t.max_steps - decay_start)
        start, peak = (t.warmup_steps, t.lr) if self.anchor is None else self.anchor
        progress = (step - start) / max(1, t.max_steps - start)
        coeff = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
        return t.min_lr + coeff * (peak - t.min_lr)

    def extended(self, step: int, old_max_steps: int) -> Schedule:
        """This schedule, for a run resumed at `step` whose max_steps was old_max_steps."""
        if self.train.schedule != "cosine" or self.train.max_steps == old_max_steps or step <= self.train.warmup_steps:
            return self
        old = Schedule(TrainConfig(**{**vars(self.train), "max_steps": old_max_steps}), self.anchor)
        return Schedule(self.train, (step, old.lr(step)))
