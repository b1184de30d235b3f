"""Metrics out: TensorBoard, Weights & Biases and trackio, from a run's events.

`scalars` turns a `step` or `eval` event into named numbers; a sink writes them.
The same sinks serve a live run (`--set log.tensorboard=true`, `log.wandb=PROJECT`,
`log.trackio=PROJECT`) and `gptbench export RUN --format tensorboard`.

Live, the sinks run in a follower process, `python -m workbench.metric_sinks`,
that the trainer's main process starts and that tails RUN_DIR/events.jsonl the
way an attached app does. Why a process and not a thread inside the trainer:
- the training loop is untouched: no host sync, no queue to fill, no GIL taken
  by protobuf encoding or by a library's background work (wandb runs its own
  service; an unreachable server retries for minutes);
- a sink that raises or hangs cannot stop or slow training: it prints one
  warning (on the trainer's stderr, which the CLI and the app show) and is dropped;
- events.jsonl is what the app reads, so the sinks see exactly its metrics, and
  one that falls behind catches up from the file instead of dropping events.
It ends after the run's `run_finished`, or once the trainer's process is gone
and the file is read to its end.

The libraries are optional extras (`pip install "gptbench[tensorboard]"`, ...),
imported only when a sink is opened. Plain Python: no torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import metrics
from .config import LOG_PACKAGES, LogConfig
from .events import ProtocolError, decode
from .run_files import CONFIG_FILE, EVENTS_FILE, read_json
from .runs import pid_alive, read_labels

TENSORBOARD_DIR = "tensorboard"
SINKS_LOG = "metric_sinks.log"  # what the sinks say after the run has ended


def scalars(event: dict) -> dict[str, float]:
    """The numbers of a step or eval event, under the names the dashboards show (metrics.py's tags)."""
    kind = event["event"]
    if kind not in ("step", "eval"):
        return {}
    values = {m.tag: event.get(m.key) for m in metrics.of_event(kind) if m.tag}
    if kind == "eval":
        values.update({metrics.TASK_TAG.format(k): v for k, v in (event.get("metrics") or {}).items()})
    return {tag: float(v) for tag, v in values.items() if metrics.is_number(v)}


class TensorBoardSink:
    """Event files under log_dir, written with tensorboard's own writer (no TensorFlow, no torch)."""

    def __init__(self, log_dir: Path):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.event_pb2, self.summary_pb2 = event_pb2, summary_pb2
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.writer = EventFileWriter(str(log_dir))

    def write(self, step: int, values: dict[str, float], wall_time: float) -> None:
        summary = self.summary_pb2.Summary(
            value=[self.summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in values.items()]
        )
        self.writer.add_event(self.event_pb2.Event(wall_time=wall_time, step=step, summary=summary))

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """One W&B run per run directory (resumed runs continue it); WANDB_MODE=offline is honoured by wandb itself."""

    def __init__(self, project: str, run_dir: Path):
        import wandb

        labels = read_labels(run_dir)
        self.run = wandb.init(
            project=project,
            id=_run_id(run_dir),
            resume="allow",
            dir=str(run_dir),
            name=labels.get("name") or run_dir.name,
            tags=labels.get("tags") or None,
            notes=labels.get("notes") or None,
            config=read_json(run_dir / CONFIG_FILE),
        )

    def write(self, step: int, values: dict[str, float], wall_time: float) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class TrackioSink:
    """trackio: Hugging Face's local-first tracker with the wandb API (a local SQLite store)."""

    def __init__(self, project: str, run_dir: Path):
        import trackio

        self.trackio = trackio
        self.run = trackio.init(
            project=project,
            name=read_labels(run_dir).get("name") or run_dir.name,
            config=read_json(run_dir / CONFIG_FILE),
            resume="allow",
        )

    def write(self, step: int, values: dict[str, float], wall_time: float) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.trackio.finish()


def _run_id(run_dir: Path) -> str:
    """A stable id for the run directory, so a --resume continues the same W&B run."""
    import hashlib

    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]


# ----------------------------------------------------------------- follower


class Follower:
    """Feeds events to the sinks of a run's log config; drops a sink at its first failure."""

    def __init__(self, run_dir: Path, log: dict):
        self.run_dir = run_dir
        self.sinks: dict[str, object] = {}
        openers = {
            "tensorboard": lambda: TensorBoardSink(run_dir / TENSORBOARD_DIR),
            "wandb": lambda: WandbSink(log["wandb"], run_dir),
            "trackio": lambda: TrackioSink(log["trackio"], run_dir),
        }
        for key, open_sink in openers.items():
            if log.get(key):
                self._guard(key, lambda key=key, open_sink=open_sink: self.sinks.__setitem__(key, open_sink()))

    def feed(self, event: dict) -> None:
        values = scalars(event)
        if values:
            for key, sink in list(self.sinks.items()):
                self._guard(key, lambda sink=sink: sink.write(event["step"], values, event["t"]))

    def close(self) -> None:
        for key, sink in list(self.sinks.items()):
            self._guard(key, sink.close)

    def _guard(self, key: str, action) -> None:
        try:
            action()
        except Exception as exc:  # any failure of a logging library: warn once, never stop the run
            self.sinks.pop(key, None)
            print(
                f"warning: log.{key} stopped ({type(exc).__name__}: {exc}); training goes on, and "
                f"`gptbench export {self.run_dir} --format csv|tensorboard` writes every metric later.",
                file=sys.stderr,
                flush=True,
            )


def follow(run_dir: Path, offset: int, trainer_pid: int, poll_s: float = 0.5) -> None:
    """Feed the sinks every event from byte `offset` of events.jsonl until the run ends.

    (runs.follow_events stops when asked, even mid-file; this one stops only at
    the end of the file, so nothing the trainer wrote before it died is lost.)
    """
    follower = Follower(run_dir, read_json(run_dir / CONFIG_FILE).get("log", {}))
    trainer_gone = False
    with open(run_dir / EVENTS_FILE, encoding="utf-8") as f:
        f.seek(offset)
        partial = ""
        while True:
            line = f.readline()
            if not line:
                if trainer_gone:
                    break  # at the end, and nothing more will come
                trainer_gone = not pid_alive(trainer_pid)  # one more pass reads what it wrote last
                time.sleep(0 if trainer_gone else poll_s)
                continue
            partial += line
            if not partial.endswith("\n"):
                continue  # the trainer is mid-line
            try:
                event = decode(partial)
            except ProtocolError:
                event = None
            partial = ""
            if event:
                follower.feed(event)
                if event["event"] == "run_finished" or not follower.sinks:
                    break  # the run is over, or every sink has failed
    # Whoever started the trainer reads its stderr, which we share, to the end:
    # let go of it, so a slow close (a wandb upload) never holds up their exit.
    log_file = os.open(run_dir / SINKS_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for fd in (1, 2):
        os.dup2(log_file, fd)
    follower.close()


def start_follower(run_dir: Path, log: LogConfig) -> None:
    """From the trainer's main process: follow the events written from now on, if any sink is on."""
    import subprocess

    if not any(getattr(log, key) for key in LOG_PACKAGES):
        return
    offset = (run_dir / EVENTS_FILE).stat().st_size
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.metric_sinks",
            "--run-dir",
            str(run_dir),
            "--offset",
            str(offset),
            "--trainer-pid",
            str(os.getpid()),
        ],
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr,
        stderr=sys.stderr,  # its warnings reach the trainer's stderr
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m workbench.metric_sinks", description="Feed a run's metrics to TensorBoard, W&B, trackio."
    )
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--offset", type=int, default=0, help="byte offset in events.jsonl to start from")
    p.add_argument("--trainer-pid", type=int, required=True)
    args = p.parse_args(argv)
    follow(args.run_dir, args.offset, args.trainer_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
