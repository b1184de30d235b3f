"""What the picker can say about a run before it starts, without torch.

The UI never imports torch, so it cannot ask torch which device it will get.
It guesses from the machine instead (an NVIDIA driver means CUDA, Apple
silicon means MPS) the same way the trainer's `train.device=auto` will decide,
and estimates the wall time from the training FLOPs at a typical throughput
for that kind of device. Both are labelled as rough on screen.
"""

from __future__ import annotations

import platform
import shutil
import sys
from pathlib import Path

from ..config import Config, flops_per_token

# Sustained training FLOP/s of a small GPT. CPU: measured on the project's
# 2-core machines in fp32 (addition ~3e10, shakespeare-char's CPU profile ~1e11).
# MPS and CUDA: about 40% of a typical peak (an M-series GPU; an H100 in bf16).
TYPICAL_FLOPS = {"cpu": 5.0e10, "mps": 2.0e12, "cuda": 4.0e14}


def guess_device_kind() -> str:
    if Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi"):
        return "cuda"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "mps"
    return "cpu"


def rough_duration(seconds: float) -> str:
    """An estimate reads better coarse: ~40 s, ~12 min, ~3 h, ~520 days."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 1.5 * size:
            return f"~{seconds / size:.0f} {unit}"
    return f"~{seconds:.0f} s"


def train_seconds(cfg: Config, params: int, device_kind: str) -> float:
    """Rough wall time of cfg's whole run: FLOPs of every step / typical FLOP/s."""
    total_flops = flops_per_token(cfg.model, params) * cfg.tokens_per_step() * cfg.train.max_steps
    return total_flops / TYPICAL_FLOPS.get(device_kind, TYPICAL_FLOPS["cpu"])
