"""How many threads a torch process of gptbench uses on the CPU.

torch takes every core by default. Two torch processes that both do so on a
2-core machine (a trainer and a checkpoint sampler, or two trainers) fight for
the cores and slow each other down 10-30x (we measured decoding fall from 548
to 8.8 tok/s). So each gptbench process takes its share: the cores this
process may run on, divided by the gptbench torch processes running now. The
trainer looks again every few seconds and gives cores back or takes them.

An explicit `train.threads` or OMP_NUM_THREADS wins.
"""

from __future__ import annotations

import os

import psutil

# Every torch process of gptbench runs one of these modules (`python -m ...`).
ENGINE_MODULE_PREFIX = "workbench.engine."


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity API
        return os.cpu_count() or 1


def engine_processes() -> int:
    """gptbench torch processes running now (this one included)."""
    count = 0
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "torch.distributed.run" in cmdline:
            continue  # torchrun's launcher only waits for its workers
        if any(arg.startswith(ENGINE_MODULE_PREFIX) for arg in cmdline):
            count += 1
    return max(1, count)


def fair_threads(requested: int = 0) -> int:
    """train.threads if set, else OMP_NUM_THREADS if set, else a fair share of the cores."""
    if requested > 0:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, available_cores() // engine_processes())


def why_threads_changed(old: int, new: int) -> str:
    """For the log line that says the share changed: who came or went."""
    processes = engine_processes()
    who = "another gptbench process started" if new < old else "a gptbench process ended"
    return f"{who}: {processes} share {available_cores()} cores"
