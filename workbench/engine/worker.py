"""The trainer process: `python -m workbench.engine.worker --run-dir D --preset P`.

Started by `launcher.TrainerProcess` (directly, or under torchrun for several
processes). Its stdout carries events and nothing else: anything a library
prints is moved to stderr, so the stream the UI parses stays clean.

Whoever reads those pipes may go away while we train (a dropped SSH session,
`| head`, an app that quit and left the run going). The run goes on: events
still reach events.jsonl (EventLog drops the dead pipe) and stderr moves to
RUN_DIR/stderr.log (`StderrOutlivingItsReader`).

Exit codes: 0 completed, 130 stopped (Ctrl-C, SIGTERM or the stop command),
2 bad input (config, data, checkpoint), 1 anything else.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from .. import presets
from ..config import Config, ConfigError, parse_override, set_value, validate
from ..events import encode, make
from ..runs import CONFIG_FILE, EVENTS_FILE, STDERR_FILE, read_json
from .event_log import EventLog

EXIT_CODES = {"completed": 0, "stopped": 130, "error": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m workbench.engine.worker", description="Run one training job; events on stdout.")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--preset", help="preset name (not needed with --resume)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last.pt")
    return p.parse_args(argv)


class StderrOutlivingItsReader:
    """sys.stderr (and sys.stdout) of the trainer: the launcher's pipe while
    somebody reads it, RUN_DIR/stderr.log once nobody does.

    Python ignores SIGPIPE, so a write to a pipe nobody reads raises
    BrokenPipeError: from a print, a traceback, a logging record, anywhere in
    the run. The first write that fails moves fds 1 and 2 onto the log file
    (torch's C++ messages, written to the fds directly, follow) and is written
    again there.
    """

    def __init__(self, stream, log_path: Path):
        self._stream = stream
        self._log_path = log_path

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            self._move_to_log()
            return self._stream.write(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._move_to_log()

    def _move_to_log(self) -> None:
        try:
            fd = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:  # the run directory is not there (yet): nowhere better to write
            fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)  # fileno, isatty, encoding, ... of the stream underneath


def event_stream():
    """Keep the real stdout for events; point fd 1 (and sys.stdout) at stderr."""
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    return events


def resolve_config(args: argparse.Namespace, device_kind: str) -> Config:
    if args.resume:
        saved = read_json(args.run_dir / CONFIG_FILE)
        if not saved:
            raise ConfigError(f"{args.run_dir} has no config.json to resume from.", "pass the directory of a run started by `gptbench run`.")
        cfg = Config.from_dict(saved)
        for override in args.overrides:  # e.g. a longer train.max_steps
            set_value(cfg, *parse_override(override))
        validate(cfg)
        return cfg
    if not args.preset:
        raise ConfigError("No preset given.", "pass --preset NAME, or --resume to continue a run.")
    return presets.resolve(presets.load(args.preset), args.overrides, device_kind)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    stream = event_stream() if rank == 0 else None
    sys.stdout = sys.stderr = StderrOutlivingItsReader(sys.stderr, args.run_dir / STDERR_FILE)

    is_main = rank == 0
    if is_main and not args.resume and (args.run_dir / EVENTS_FILE).exists():
        # Say so on the stream only: this run's events.jsonl belongs to the run it holds.
        err = make("error", kind="config", message=f"{args.run_dir} already holds a run.",
                   hint="continue it with --resume, or choose another --run-dir.")
        stream.write(encode(err) + "\n")
        return 2
    if is_main:
        args.run_dir.mkdir(parents=True, exist_ok=True)
    log = EventLog(args.run_dir, stream, enabled=is_main)
    # The first event goes out before torch loads (seconds): `run --detach`
    # waits for it, and its pid tells `runs` and `logs -f` that a trainer is
    # starting up (the control FIFO only opens once the model is built).
    log.emit("status", state="starting", pid=os.getpid())

    # Imported here so that `--help` and bad arguments answer instantly.
    import torch  # noqa: F401  (fail early and clearly if torch is missing)

    from .checkpoint import CheckpointError
    from .device import detect_kind, setup_device
    from .distributed import init_world, shutdown
    from .trainer import NonFiniteLoss, Trainer, write_run_files

    trainer = None
    world = None
    finished = False
    try:
        cfg = resolve_config(args, detect_kind())
        setup = setup_device(cfg.train, int(os.environ.get("LOCAL_RANK", 0)))
        world = init_world(setup.kind)
        trainer = Trainer(cfg, args.run_dir, setup, world, log, resume=args.resume)
        if world.is_main:
            write_run_files(trainer)
        reason = trainer.run()
        trainer.finish(reason)
        finished = True
        return EXIT_CODES[reason]
    except (ConfigError, CheckpointError) as exc:
        return _fail(log, trainer, "config", exc.message, exc.hint, 2)
    except NonFiniteLoss as exc:
        return _fail(log, trainer, "nan", str(exc), "lower train.lr or raise train.warmup_steps; last.pt still holds the last good weights.", 1)
    except torch.OutOfMemoryError:
        return _fail(log, trainer, "oom", "The GPU ran out of memory.", "lower train.batch_size (tokens_per_step keeps the step size through gradient accumulation).", 1)
    except KeyboardInterrupt:
        return _fail(log, trainer, "stopped", "Interrupted before training started.", "nothing was trained; start again when ready.", 130)
    except Exception as exc:  # a bug: keep the traceback on stderr, one sentence in the events
        traceback.print_exc()
        return _fail(log, trainer, "internal", f"{type(exc).__name__}: {exc}", "this is a gptbench bug; the traceback is on stderr.", 1)
    finally:
        if trainer is not None:
            trainer.close()
        if world is not None:
            shutdown(world, clean=finished)
        log.close()


def _fail(log, trainer, kind: str, message: str, hint: str, code: int) -> int:
    log.emit("error", kind=kind, message=message, hint=hint)
    step = trainer.step if trainer else 0
    best = trainer.best_val_loss if trainer else None
    log.emit("run_finished", reason="stopped" if code == 130 else "error", step=step, best_val_loss=best, metrics={})
    log.emit("status", state="crashed" if code != 130 else "finished")
    return code


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
