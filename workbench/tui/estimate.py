"""What the picker can say about a run before it starts, without torch.

The UI never imports torch, so it cannot ask torch which device it will get.
It guesses from the machine instead (an NVIDIA driver means CUDA, Apple
silicon means MPS) the same way the trainer's `train.device=auto` will decide,
and estimates the wall time of the steps: a fixed cost per step (Python, the
optimizer, small kernels: what bounds a tiny model) plus the step's FLOPs at
a typical throughput for that kind of device (what bounds a large one). Both
are labelled as rough on screen.
"""

from __future__ import annotations

import platform
import shutil
import sys
from pathlib import Path

from ..config import Config, flops_per_token

# Sustained training FLOP/s of the matmuls, and the fixed cost of one step. CPU:
# fitted to the project's 2-core machines in fp32, 2 threads: addition 16.2 ms
# and shakespeare-char 39.1 ms a step (bench/results/2026-11-23-cpu-acceptance.json),
# gpt2-124m ~2,800 s a step (a heavy-step walk, issue 22), each within ~10%; a
# single FLOP rate was 1.7x too slow for shakespeare-char and 3x for gpt2-124m.
# MPS and CUDA: about 40% of a typical peak (an M-series GPU; an H100 in bf16).
TYPICAL_FLOPS = {"cpu": 1.5e11, "mps": 2.0e12, "cuda": 4.0e14}
STEP_OVERHEAD_S = {"cpu": 0.012, "mps": 0.01, "cuda": 0.005}


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
    """Rough wall time of cfg's steps: each costs a fixed overhead plus its FLOPs at a typical FLOP/s."""
    kind = device_kind if device_kind in TYPICAL_FLOPS else "cpu"
    step_flops = flops_per_token(cfg.model, params) * cfg.tokens_per_step()
    return cfg.train.max_steps * (STEP_OVERHEAD_S[kind] + step_flops / TYPICAL_FLOPS[kind])
