"""The event protocol between the trainer and everything that watches it.

One event is one JSON object on one line, with an `"event"` field naming its
type and a `"t"` field with the wall-clock time (unix seconds). The trainer
writes every event to `RUN_DIR/events.jsonl` (durable: attach, replay, compare)
and to its stdout (live: the launcher reads it on its own thread).

Commands travel the other way, one JSON object per line with a `"cmd"` field,
through the run directory's control FIFO (see `control.py`).

This module is plain Python, imported by the trainer and by the UI alike.
"""

from __future__ import annotations

import json
import time
from typing import Any

# Version rules: a new event type or a new optional field keeps the version (a reader skips an event
# it does not know: decode raises ProtocolError, and every reader passes over those lines); a required
# field renamed, removed or changed in meaning raises it. run_started carries it as `v`.
PROTOCOL_VERSION = 1

# event type -> fields it always carries (others are optional extras)
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    # config (resolved, dict), params, device, dtype, compile, world_size, tokens_per_step, ...;
    # optimizer: what trains which weights ("adamw", or "muon (N matrices) + adamw (M tensors)")
    "run_started": ("v", "config", "params", "device", "dtype", "compile", "world_size", "tokens_per_step"),
    # one optimizer step (coalesced: one every train.log_every steps); mfu is null off-GPU
    "step": ("step", "loss", "lr", "grad_norm", "tokens_per_sec", "mfu", "elapsed_s"),
    # metrics: task metrics such as {"accuracy": 1.0, "accuracy_all": 1.0}
    "eval": ("step", "val_loss", "metrics"),
    # a sampling request's output, streamed: `text` is the new piece, `done` closes it
    # (`cancelled: true` on the last piece of a cancelled request; weights_step: a live sample's step)
    "sample": ("id", "text", "done"),
    "checkpoint": ("step", "path"),
    # state: starting | compiling | training | evaluating | sampling | paused | stopping | finished | crashed
    "status": ("state",),
    # extras: level; threads (CPU: the threads used from now on, when the trainer's share of the cores changed)
    "log": ("message",),
    # long jobs: stage, done and total (null if unknown). Data prep, `gptbench eval`, and a training
    # step that takes long: stage micro_step, done of total micro-steps, with step (the step in
    # progress), tokens_seen and micro_s (seconds per micro-step so far)
    "progress": ("stage", "done", "total"),
    # kind: config | data | oom | nan | disk | checkpoint | prompt | internal ...
    "error": ("kind", "message", "hint"),
    # reason: completed | stopped | pruned (a sweep's pruner stopped it) | error; extras: peak_rss_gb,
    # gpu_peak_gb (CUDA), compiled_graphs and compile_s (compiled runs: seconds spent compiling),
    # ranks_in_sync (DDP)
    "run_finished": ("reason", "step", "best_val_loss", "metrics"),
    # `gptbench run --dry-run`'s answer (worker --dry-run): the resolved config and the device it would run on
    "dry_run": ("config", "device", "device_name", "dtype", "compile"),
    # the machine every few seconds, when a reading changed (see system_monitor.py): CPU % of all
    # cores, RAM, the trainer's resident memory; gpus: [{index, name, util_percent, mem_used_gb,
    # mem_total_gb, power_w, temp_c}], empty with a `gpu_note` saying why when NVML has none
    "system": ("cpu_percent", "cpu_count", "ram_used_gb", "ram_total_gb", "rss_gb", "gpus"),
}

# sample_cancel {"id": ...}: drop a queued or streaming sample request;
# stop {"reason": "pruned"}: a sweep's pruner stops the run (it finishes with reason pruned)
COMMANDS = ("stop", "pause", "resume", "checkpoint", "sample", "sample_cancel")


class ProtocolError(ValueError):
    pass


def make(event: str, **fields: Any) -> dict:
    """Build an event dict, checking that its required fields are there."""
    if event not in EVENT_FIELDS:
        raise ProtocolError(f"unknown event type {event!r}")
    missing = [f for f in EVENT_FIELDS[event] if f not in fields]
    if missing:
        raise ProtocolError(f"{event} event is missing {', '.join(missing)}")
    return {"event": event, "t": round(time.time(), 3), **fields}


def encode(event: dict) -> str:
    """One line of JSON (no newline). NaN/inf become null: JSON has no NaN."""
    return json.dumps(_finite(event), separators=(",", ":"), allow_nan=False)


def decode(line: str) -> dict:
    """Parse one line; raises ProtocolError for anything that is not an event."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {line[:80]!r}") from exc
    if not isinstance(obj, dict) or obj.get("event") not in EVENT_FIELDS:
        raise ProtocolError(f"not an event: {line[:80]!r}")
    if any(f not in obj for f in EVENT_FIELDS[obj["event"]]):  # readers may index every required field
        raise ProtocolError(f"{obj['event']} event without its fields: {line[:80]!r}")
    return obj


def command(cmd: str, **fields: Any) -> dict:
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}; commands are {', '.join(COMMANDS)}")
    return {"cmd": cmd, **fields}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
