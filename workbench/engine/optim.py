"""AdamW and the learning-rate schedules, as in GPT-2/3, nanoGPT and MiniCPM (WSD)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import TrainConfig


def make_optimizer(model: torch.nn.Module, train: TrainConfig, device_kind: str) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only.

    Every 2-D parameter (linear weights, embeddings) decays; biases and
    LayerNorm gains don't: shrinking them toward zero only hurts.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel updates all parameters in a few launches instead of a
    # few per parameter: a measurable win at every model size on CUDA, and on
    # the CPU (a vectorised loop instead of many small foreach ops).
    return torch.optim.AdamW(
        groups, lr=train.lr, betas=(train.beta1, train.beta2), fused=device_kind in ("cuda", "cpu")
    )


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
    """

    train: TrainConfig
    anchor: tuple[int, float] | None = None

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
