"""AdamW and the learning-rate schedule, as in GPT-2/3 and nanoGPT."""

from __future__ import annotations

import math

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
    # The fused CUDA kernel updates all parameters in a few launches instead of
    # a few per parameter: a measurable win at every model size.
    return torch.optim.AdamW(
        groups, lr=train.lr, betas=(train.beta1, train.beta2), fused=device_kind == "cuda"
    )


def lr_at(step: int, train: TrainConfig) -> float:
    """Linear warmup to lr, then cosine decay to min_lr at max_steps."""
    if step < train.warmup_steps:
        return train.lr * (step + 1) / (train.warmup_steps + 1)
    if step >= train.max_steps:
        return train.min_lr
    progress = (step - train.warmup_steps) / max(1, train.max_steps - train.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return train.min_lr + coeff * (train.lr - train.min_lr)
