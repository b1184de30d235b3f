"""How many threads a torch process of gptbench uses on the CPU.

torch takes every core by default. Two torch processes that both do so on a
2-core machine (a trainer and a checkpoint sampler, or two trainers) fight for
the cores and slow each other down 10-30x (we measured decoding fall from 548
to 8.8 tok/s). So each gptbench process takes its share: the cores this
process may run on, divided by the gptbench torch processes busy now. The
trainer looks again every few seconds and gives cores back or takes them.

Only a busy process claims cores: a sampler waiting for the next prompt, or a
paused trainer, uses none, and counting it would leave a core idle for as long
as it waits. Busy means it used the CPU since the previous look (the first
look of a process watches the others for a moment).

An explicit `train.threads` or OMP_NUM_THREADS wins.
"""

from __future__ import annotations

import os
import time

import psutil

# Every torch process of gptbench runs one of these modules (`python -m ...`).
ENGINE_MODULE_PREFIX = "workbench.engine."
# A process that used less than this share of one core since the previous look is idle.
IDLE_CORE_SHARE = 0.05
# The first look has nothing to compare with: it watches the others this long.
FIRST_LOOK_S = 0.3

# The previous look: every other engine process's CPU seconds by pid, when it was taken,
# and how many processes claimed cores then (this one included).
_cpu_seen: dict[int, float] = {}
_seen_at: float | None = None
_claimants = 1


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity API
        return os.cpu_count() or 1


def _other_engine_processes() -> dict[int, float]:
    """The other gptbench torch processes running now: pid -> CPU seconds used so far (inf: not ours to read)."""
    found = {}
    for proc in psutil.process_iter(["cmdline", "cpu_times"]):
        cmdline = proc.info["cmdline"] or []
        if proc.pid == os.getpid() or "torch.distributed.run" in cmdline:
            continue  # torchrun's launcher only waits for its workers
        if any(arg.startswith(ENGINE_MODULE_PREFIX) for arg in cmdline):
            times = proc.info["cpu_times"]
            found[proc.pid] = times.user + times.system if times else float("inf")
    return found


def busy_engine_processes() -> list[int]:
    """The other gptbench torch processes that used the CPU since the previous look (pids)."""
    global _cpu_seen, _seen_at, _claimants
    if _seen_at is None:
        _cpu_seen, _seen_at = _other_engine_processes(), time.monotonic()
        time.sleep(FIRST_LOOK_S)
    now = _other_engine_processes()
    window = time.monotonic() - _seen_at
    # A process born since the previous look has used the CPU only since then.
    busy = [
        pid
        for pid, cpu in now.items()
        if cpu == float("inf") or cpu - _cpu_seen.get(pid, 0.0) > IDLE_CORE_SHARE * window
    ]
    _cpu_seen, _seen_at, _claimants = now, time.monotonic(), 1 + len(busy)
    return busy


def engine_processes() -> int:
    """gptbench torch processes that claim cores now: this one, and every other one busy since the previous look."""
    return 1 + len(busy_engine_processes())


def fair_threads(requested: int = 0) -> int:
    """train.threads if set, else OMP_NUM_THREADS if set, else a fair share of the cores."""
    if requested > 0:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, available_cores() // engine_processes())


def why_threads_changed(old: int, new: int) -> str:
    """For the log line that says the share changed (right after fair_threads): who came or went."""
    who = "another gptbench process got busy" if new < old else "a gptbench process ended or went idle"
    return f"{who}: {_claimants} share {available_cores()} cores"
