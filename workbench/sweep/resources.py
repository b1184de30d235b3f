"""How many trials run at once on this machine, and what each one gets (`--parallel N|auto`).

The rule (README states it):

- CPU: N trials share the cores this process may use; each gets
  train.threads = cores // N (at least 1). auto: one trial per 2 cores.
- CUDA: one trial per visible GPU; --parallel N deals N trials out over the
  GPUs in turn. auto also packs several trials on one GPU when the trial's
  model is under 50M parameters: as many as 80% of the GPU's memory holds at
  2 GiB plus 20 bytes per parameter each, at most 4.
- A time objective (seconds_to) with auto runs one trial per device (one at a
  time on a CPU): concurrent trials slow each other, and the clock would say so.

GPUs are found through NVML (nvidia-ml-py), limited to CUDA_VISIBLE_DEVICES:
never torch, which the sweep process does not import. Each trial records the
slot it had (trial.json), so the report can say that its times were measured
under concurrency.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from .. import presets
from ..config import ConfigError, estimate_params, parse_override
from .objective import Objective
from .spec import SweepSpec

SMALL_MODEL_PARAMS = 50_000_000
TRIAL_BASE_BYTES = 2 * 2**30  # the CUDA context, activations, allocator slack: a rough floor per trial
BYTES_PER_PARAM = 20  # fp32 weights, grads, AdamW's two moments, and some
MAX_PER_GPU = 4


@dataclass(frozen=True)
class Slot:
    """One place a trial runs: its CPU threads, or its GPU and how many trials share that GPU."""

    index: int
    concurrent: int  # trials at once on this machine (this sweep process)
    threads: int | None = None  # CPU
    gpu: str | None = None  # the CUDA_VISIBLE_DEVICES entry of its GPU
    gpu_share: int = 1  # trials on that GPU

    def sets(self) -> list[str]:
        return [f"train.threads={self.threads}"] if self.threads else []

    def env(self) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": self.gpu} if self.gpu is not None else {}

    def record(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        where = f"{self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else f"GPU {self.gpu}"
        share = f", 1/{self.gpu_share} of it" if self.gpu_share > 1 else ""
        return f"{where}{share}"


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[tuple[str, int]]:
    """(CUDA_VISIBLE_DEVICES entry, total memory in bytes) of each GPU a trial may use; [] without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no library: no GPU
        return []
    try:
        count = pynvml.nvmlDeviceGetCount()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        indices = [v.strip() for v in visible.split(",") if v.strip()] if visible is not None else None
        chosen = [str(i) for i in range(count)] if indices is None else indices
        gpus = []
        for entry in chosen:
            handle = (
                pynvml.nvmlDeviceGetHandleByIndex(int(entry))
                if entry.isdigit()
                else pynvml.nvmlDeviceGetHandleByUUID(entry)
            )
            gpus.append((entry, int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)))
        return gpus
    except Exception:  # noqa: BLE001 - a GPU NVML cannot read: leave the GPUs out rather than guess
        return []
    finally:
        pynvml.nvmlShutdown()


def device_kind(spec: SweepSpec) -> str:
    device = "auto"
    for text in spec.sets:
        key, value = parse_override(text)
        if key == "train.device":
            device = value
    if device.startswith("cuda"):
        return "cuda"
    if device == "auto":
        return "cuda" if visible_gpus() else "cpu"
    return "cpu"


def largest_params(spec: SweepSpec) -> int:
    """The parameters of the largest model the sweep trains (a grid's settings; a space's ends)."""
    preset = presets.load(spec.preset)
    candidates = spec.settings if spec.grid else [{}]
    for key, dist in spec.space.items():
        candidates += [{key: v} for v in dist.ends]
    most = 0
    for params in candidates[:1000]:
        try:
            cfg = presets.resolve(preset, spec.overrides(params, 0), "cuda")
        except ConfigError:
            continue
        vocab = cfg.model.vocab_size or presets.TYPICAL_VOCAB[cfg.data.tokenizer]
        cfg.model.vocab_size = vocab
        most = max(most, estimate_params(cfg.model))
    return most


def parse_parallel(text: str) -> int | None:
    """--parallel: a count, or None for auto."""
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--parallel must be a count of trials or auto, got {text!r}.", "e.g. --parallel 2")
    return int(text)


def plan_slots(spec: SweepSpec, parallel: int | None) -> list[Slot]:
    """The slots trials run in on this machine (see the module's rule)."""
    timed = Objective.parse(spec.objective).is_time
    if device_kind(spec) == "cpu":
        cores = cpu_cores()
        n = parallel or (1 if timed else max(1, cores // 2))
        threads = max(1, cores // n)
        return [Slot(i, n, threads=threads) for i in range(n)]
    gpus = visible_gpus()
    if not gpus:
        raise ConfigError(
            "train.device asks for CUDA, and no GPU is visible (NVML finds none).",
            "check nvidia-smi and CUDA_VISIBLE_DEVICES, or --set train.device=cpu.",
        )
    if parallel is None:
        per_gpu = 1
        params = largest_params(spec)
        if not timed and params < SMALL_MODEL_PARAMS:
            need = TRIAL_BASE_BYTES + BYTES_PER_PARAM * params
            per_gpu = max(1, min(MAX_PER_GPU, math.floor(0.8 * min(mem for _, mem in gpus) / need)))
        parallel = per_gpu * len(gpus)
    shares = [sum(1 for i in range(parallel) if i % len(gpus) == g) for g in range(len(gpus))]
    return [Slot(i, parallel, gpu=gpus[i % len(gpus)][0], gpu_share=shares[i % len(gpus)]) for i in range(parallel)]
