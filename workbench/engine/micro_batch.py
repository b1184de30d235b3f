"""`train.batch_size=auto`: the largest micro-batch that fits, chosen at start-up.

The optimizer step stays what the config says (train.tokens_per_step); only
how it is cut into micro-batches changes, through gradient accumulation. So a
run means the same on a 24 GB and an 80 GB GPU, and the bigger one simply
takes fewer, larger micro-steps.

On CUDA each candidate (sizes that divide the step, largest first) is
tried for real: a forward and backward pass of the model at that size, with
the memory AdamW's moments and the accumulated gradients will take set aside,
within the memory free now (other processes may hold some), and 10% left for
the allocator's fragmentation. The first that fits wins. The probe runs the eager
model; torch.compile's fused kernels need less memory, never more. Elsewhere
there is no out-of-memory to probe for (a CPU swaps), so auto means the
largest power of two up to OTHER_DEVICES_MAX that divides the step.

On a CPU, auto also goes by time (`timed_on_cpu`): requests (pause, stop, a
sample) wait for the next boundary between micro-steps, so a micro-step of
minutes makes the trainer look hung. The probe times one micro-step of one
sequence and takes the largest size whose micro-step should take about
MICRO_STEP_TARGET_S.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.distributed as dist

from ..config import Config, ConfigError
from .device import DeviceSetup
from .distributed import World

CUDA_MAX = 128
OTHER_DEVICES_MAX = 16
MICRO_STEP_TARGET_S = 1.5  # CPU: about how long one micro-step of the chosen size takes
HEADROOM = 0.9  # use at most this fraction of the GPU's memory while probing


def candidates(sequences: int, largest: int) -> list[int]:
    """Sizes to try, largest first: the largest divisor of `sequences` up to
    `largest`, then after each the largest divisor up to half of it."""
    sizes, limit = [], min(sequences, largest)
    while limit >= 1:
        size = max(d for d in range(1, limit + 1) if sequences % d == 0)
        sizes.append(size)
        limit = size // 2
    return sizes


def largest_fitting(sizes: list[int], fits: Callable[[int], bool]) -> int | None:
    """The first size that fits, trying from the largest down (halving on each failure)."""
    for size in sizes:
        if fits(size):
            return size
    return None


def sequences_per_process(cfg: Config, world: World) -> int:
    per_process = cfg.model.block_size * world.size
    if cfg.train.tokens_per_step % per_process:
        raise ConfigError(
            f"train.tokens_per_step={cfg.train.tokens_per_step} is not a multiple of "
            f"block_size*processes = {per_process}.",
            f"use a multiple of {per_process}, "
            f"e.g. {max(1, round(cfg.train.tokens_per_step / per_process)) * per_process}.",
        )
    return cfg.train.tokens_per_step // per_process


def choose_micro_batch(model: torch.nn.Module, cfg: Config, setup: DeviceSetup, world: World) -> tuple[int, str]:
    """(micro-batch size, how it was chosen) for batch_size=auto. Every rank gets the same."""
    sequences = sequences_per_process(cfg, world)
    if setup.kind == "cpu":
        return timed_on_cpu(model, cfg, world, sequences)
    if setup.kind != "cuda":
        size = candidates(sequences, OTHER_DEVICES_MAX)[0]
        return size, f"the largest divisor of the step up to {OTHER_DEVICES_MAX} on {setup.kind}"
    tried: list[int] = []

    def fits(size: int) -> bool:
        tried.append(size)
        return _fits_on_gpu(model, size, cfg, setup, world.distributed)

    size = largest_fitting(candidates(sequences, CUDA_MAX), fits)
    # The probe's passes set the peak: start it afresh, so gpu_mem_gb and gpu_peak_gb report the run.
    torch.cuda.reset_peak_memory_stats(setup.device)
    if world.distributed:  # GPUs of one job may differ: all ranks take the smallest choice
        agreed = torch.tensor([size or 0], device=setup.device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
        size = int(agreed.item()) or None
    if size is None:
        raise ConfigError(
            f"Not even a micro-batch of 1 sequence of {cfg.model.block_size} tokens fits in GPU memory.",
            "use a smaller model or model.block_size, or a GPU with more memory.",
        )
    return size, "probed on the GPU: tried " + ", ".join(map(str, tried))


def _fits_on_gpu(model: torch.nn.Module, size: int, cfg: Config, setup: DeviceSetup, distributed: bool) -> bool:
    device = setup.device
    params = sum(p.numel() for p in model.parameters())
    reserve = None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    # What this process may use: free memory now (another process may hold some) plus its own.
    free, _ = torch.cuda.mem_get_info(device)
    budget = HEADROOM * (free + torch.cuda.memory_allocated(device))
    try:
        # Set aside what the probe's single pass does not allocate by itself: AdamW's two
        # moments, the gradients that already exist during the forward of every micro-step
        # after the first, and under DDP its reducer's buckets (another copy of the gradients).
        reserve = torch.empty((2 + 1 + int(distributed)) * params * 4, dtype=torch.uint8, device=device)
        # The probe must not move the training RNG (dropout draws from it).
        with torch.random.fork_rng(devices=[device]):
            x = torch.randint(cfg.model.vocab_size, (size, cfg.model.block_size), device=device)
            with setup.autocast():
                _, loss = model(x, x)
            loss.backward()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) <= budget
    except torch.OutOfMemoryError:
        return False
    finally:
        del reserve
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()


def timed_on_cpu(
    model: torch.nn.Module, cfg: Config, world: World, sequences: int, target_s: float = MICRO_STEP_TARGET_S
) -> tuple[int, str]:
    """The largest divisor of the step (up to OTHER_DEVICES_MAX) whose micro-step should take about
    target_s, from the time of a forward and backward pass of one sequence."""
    per_sequence = time_one_sequence(model, cfg, target_s)
    size = by_time(candidates(sequences, OTHER_DEVICES_MAX), per_sequence, target_s)
    if world.distributed:  # every rank takes the smallest choice: the step stays the same everywhere
        agreed = torch.tensor([size])
        dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
        size = int(agreed.item())
    return size, timed_how(size, per_sequence, target_s)


def time_one_sequence(model: torch.nn.Module, cfg: Config, target_s: float) -> float:
    """Seconds of a forward and backward pass of one sequence (the faster of two when it is quick)."""
    with torch.random.fork_rng(devices=[]):  # the probe must not move the training RNG
        x = torch.randint(cfg.model.vocab_size, (1, cfg.model.block_size))
        # One pass where it is slow: on GPT-2 it takes as long as a micro-step of one sequence (~15 s on
        # 2 cores), and the first pass's extra allocations can only make the choice smaller. A quick first
        # pass is timed again: its one-time costs (first calls, allocations) would dwarf a small model's.
        per_sequence = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            _, loss = model(x, x)
            loss.backward()
            model.zero_grad(set_to_none=True)
            per_sequence = min(per_sequence, time.perf_counter() - start)
            if per_sequence > 2 * target_s:  # slow enough that one-time costs hardly count
                break
    return per_sequence


def by_time(sizes: list[int], per_sequence: float, target_s: float) -> int:
    """The rule, once the time is known: the largest size whose micro-step takes at most target_s
    (time grows about linearly with the sequences), else the smallest."""
    return next((n for n in sizes if n * per_sequence <= target_s), sizes[-1])


def timed_how(size: int, per_sequence: float, target_s: float) -> str:
    took = f"timed on the CPU: one sequence's micro-step took {per_sequence:.2f} s"
    if size * per_sequence > target_s:
        return f"{took}, over the {target_s} s aimed at: the smallest micro-batch"
    return f"{took}, so {size} take about {size * per_sequence:.1f} s (aiming at {target_s} s)"
