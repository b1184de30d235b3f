"""The trainer process: `python -m workbench.engine.worker --run-dir D --preset P`.

Started by `launcher.EngineProcess` (directly, or under torchrun for several
processes). Its stdout carries events and nothing else: anything a library
prints is moved to stderr, so the stream the UI parses stays clean.

Whoever reads those pipes may go away while we train (a dropped SSH session,
`| head`, an app that quit and left the run going). The run goes on: events
still reach events.jsonl (EventLog drops the dead pipe) and stderr moves to
RUN_DIR/stderr.log (stderr_log.py).

Exit codes: 0 completed, 130 stopped (Ctrl-C, SIGTERM or the stop command; pruned by a sweep too),
2 bad input (config, data, checkpoint), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from .. import __version__, presets
from ..config import Config, ConfigError, estimate_params
from ..metric_sinks import start_follower
from ..process_frame import EXIT_CODES, EventWriter, Failed, failed
from ..run_files import CONFIG_FILE, EVENTS_FILE, META_FILE, STDERR_FILE
from .stderr_log import StderrOutlivingItsReader


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m workbench.engine.worker", description="Run one training job; events on stdout."
    )
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--preset", help="preset name (not needed with --resume)")
    p.add_argument("--config", type=Path, help="a user's TOML config, over the preset (or the preset itself)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last.pt")
    p.add_argument(
        "--dry-run", action="store_true", help="resolve the config on this device, print it as a dry_run event, exit"
    )
    return p.parse_args(argv)


def event_stream():
    """Keep the real stdout for events; point fd 1 (and sys.stdout) at stderr."""
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # sys.stdout itself is replaced by the caller
    return events


def resolve_config(args: argparse.Namespace, device_kind: str) -> Config:
    return presets.resolve_run(args.preset, args.config, args.overrides, device_kind)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    stream = event_stream() if rank == 0 else None
    sys.stdout = sys.stderr = StderrOutlivingItsReader(sys.stderr, args.run_dir / STDERR_FILE)

    # Imported here so that `--help` and bad arguments answer instantly.
    import torch  # noqa: F401  (fail early and clearly if torch is missing)

    from .device import detect_kind, setup_device
    from .distributed import init_world, shutdown
    from .event_log import EventLog
    from .resume import plan_resume
    from .trainer import Trainer

    if args.dry_run:
        return dry_run(args, stream)
    is_main = rank == 0
    # Until the loop takes over (it turns signals into a graceful stop), SIGTERM
    # interrupts like Ctrl-C: a stop during tokenization or start-up ends cleanly.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    resume_from = None
    if args.resume:
        # Every check that can refuse a resume runs before anything is written to the run dir.
        try:
            cfg, resume_from = plan_resume(args.run_dir, args.overrides, int(os.environ.get("WORLD_SIZE", 1)))
        except ConfigError as exc:
            refused = failed(exc)
            EventLog(args.run_dir, stream, enabled=is_main).tell("error", **refused.fields())
            return refused.code
    elif is_main and (args.run_dir / EVENTS_FILE).exists():
        # Say so on the stream only: this run's events.jsonl belongs to the run it holds.
        EventWriter(stream).emit(
            "error",
            kind="config",
            message=f"{args.run_dir} already holds a run.",
            hint="continue it with --resume, or choose another --run-dir.",
        )
        return EXIT_CODES["bad input"]
    if is_main:
        args.run_dir.mkdir(parents=True, exist_ok=True)
    log = EventLog(args.run_dir, stream, enabled=is_main)
    trainer = None
    world = None
    finished = False
    try:
        if resume_from is None:
            cfg = resolve_config(args, detect_kind())
        setup = setup_device(cfg.train, int(os.environ.get("LOCAL_RANK", 0)), estimate_params(cfg.model))
        world = init_world(setup.kind)
        if world.is_main and resume_from is None:
            log.emit("status", state="starting", pid=os.getpid())  # `runs`, `logs -f`: alive while starting up
        trainer = Trainer(cfg, args.run_dir, setup, world, log, resume_from)
        del resume_from  # the trainer holds what it needs; free the checkpoint's copy
        if world.is_main:
            write_run_files(trainer)
            start_follower(args.run_dir, cfg.log)  # TensorBoard / W&B / trackio, if on
        reason = trainer.run()
        trainer.finish(reason)
        finished = True
        return EXIT_CODES[reason]
    except (Exception, KeyboardInterrupt) as exc:  # the table of failures (process_frame.py)
        failure = failed(exc)
        if failure.kind == "stopped":  # once training runs, a stop is graceful (trainer.py): this is start-up
            failure = replace(
                failure,
                message="Stopped before the first training step finished.",
                hint="nothing was trained in this session; an earlier last.pt is unchanged.",
            )
        return _fail(log, trainer, failure)
    finally:
        if trainer is not None:
            trainer.close()
        if world is not None:
            shutdown(world, clean=finished)
        log.close()


def dry_run(args: argparse.Namespace, stream) -> int:
    """`gptbench run --dry-run`: the config and device setup the run would get; touches no run directory."""
    from .device import detect_kind, setup_device
    from .resume import plan_resume

    events = EventWriter(stream)
    try:
        processes = int(os.environ.get("WORLD_SIZE", 1))  # the world the run would have (commands/dry_run.py)
        cfg = (
            plan_resume(args.run_dir, args.overrides, processes)[0]
            if args.resume
            else resolve_config(args, detect_kind())
        )
        setup = setup_device(cfg.train, 0, estimate_params(cfg.model))
    except ConfigError as exc:
        refused = failed(exc)
        events.emit("error", **refused.fields())
        return refused.code
    events.emit(
        "dry_run",
        config=cfg.to_dict(),
        device=str(setup.device),
        device_name=setup.name,
        dtype=setup.dtype,
        compile=setup.compile,
    )
    return 0


def write_run_files(trainer) -> None:
    """config.json, meta.json, tokenizer.json: everything needed to understand or rebuild the run."""
    import torch

    cfg, run_dir, setup, world = trainer.cfg, trainer.run_dir, trainer.setup, trainer.world
    trainer.dataset.tokenizer.save(run_dir)
    (run_dir / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    meta = {
        "gptbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "git_sha": git_sha(),
        "device": str(setup.device),
        "device_name": setup.name,
        "dtype": setup.dtype,
        "compile": setup.compile,
        "world_size": world.size,
        "seed": cfg.train.seed,
        "host": platform.node(),
        "argv": json.loads(os.environ.get("GPTBENCH_ARGV", "null")) or sys.argv,  # set by `gptbench run`
        "started": time.time(),
    }
    (run_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def git_sha() -> str | None:
    """The commit of the gptbench checkout running this (None when installed from a wheel)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _fail(log, trainer, failure: Failed) -> int:
    if not log.written and trainer is None and failure.kind == "config" and log.path.exists():
        # A resume refused before its first event (e.g. the data's vocabulary
        # changed): the run's record stays as it was.
        log.tell("error", **failure.fields())
        return failure.code
    log.emit("error", **failure.fields())
    stopped = failure.code == EXIT_CODES["stopped"]
    step = trainer.step if trainer else 0
    best = trainer.best_val_loss if trainer else None
    log.emit("run_finished", reason="stopped" if stopped else "error", step=step, best_val_loss=best, metrics={})
    log.emit("status", state="finished" if stopped else "crashed")
    return failure.code


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        # After a distributed run, gloo's worker threads can abort the
        # interpreter's finalization ("terminate called without an active
        # exception", SIGABRT) although everything finished. Every event and
        # checkpoint is written and flushed by now: leave without finalizing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
