"""Start an engine process and stream its events: the parent side of process_frame.py.

Every engine process (the trainer, the evaluator, the exporter, the checkpoint
sampler, corpus preparation) runs through `EngineProcess`: it writes one JSON
event per line to its stdout, and its stdout and stderr are read on dedicated
threads so it never waits on whoever is watching. `run_job` runs one to its end
for a CLI verb. The headless command and the app both train through it, so what
prints headless is exactly what the app shows. The trainer runs as
`python -m workbench.engine.worker` (or under torchrun for several processes).

The app and the headless command start trainers in a session of their own
(`detach=True`): a terminal's signals (a hangup when SSH drops, Ctrl-C) never
reach them by themselves; the starter decides what to pass on (`signal`). The
trainer outlives its starter either way: its output falls back to the run
directory when nobody reads its pipes (engine/worker.py).

Plain Python: never imports torch.
"""

from __future__ import annotations

import collections
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .control import send_command
from .events import ProtocolError, decode, make
from .run_files import STDERR_FILE

EventHandler = Callable[[dict], None]


@dataclass(frozen=True)
class Nodes:
    """Where the processes of a run live: torchrun's multi-node flags, passed through.

    One machine (nnodes=1) uses torchrun's --standalone rendezvous. For N
    machines every node runs the same command with its own node_rank, and
    `rdzv_endpoint` (HOST:PORT of node 0, reachable from all) is where they meet.
    """

    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str = ""

    def torchrun_args(self) -> list[str]:
        args = [f"--nproc-per-node={self.nproc_per_node}"]
        if self.nnodes == 1:
            return ["--standalone", *args]
        return [
            *args,
            f"--nnodes={self.nnodes}",
            f"--node-rank={self.node_rank}",
            f"--rdzv-endpoint={self.rdzv_endpoint}",
        ]


def trainer_command(
    preset: str | None,
    run_dir: Path,
    overrides: list[str] = (),
    resume: bool = False,
    nodes: Nodes | None = None,
    config_file: Path | None = None,
    dry_run: bool = False,
) -> list[str]:
    """The argv that starts training; torchrun (as `python -m torch.distributed.run`) for several processes."""
    nodes = nodes or Nodes()
    args = ["--run-dir", str(run_dir)]
    if preset:
        args += ["--preset", preset]
    if config_file:
        args += ["--config", str(Path(config_file).expanduser().resolve())]
    if resume:
        args.append("--resume")
    if dry_run:
        args.append("--dry-run")
    for o in overrides:
        args += ["--set", o]
    if nodes.nproc_per_node > 1 or nodes.nnodes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", *nodes.torchrun_args(), "-m"]
    else:
        launcher = [sys.executable, "-m"]
    return [*launcher, "workbench.engine.worker", *args]


def sampler_command(run_dir: Path, args: list[str]) -> list[str]:
    """The argv of the checkpoint sampler (`--serve` keeps it answering stdin)."""
    return [sys.executable, "-m", "workbench.engine.sampler", "--run-dir", str(run_dir), *args]


def start_in_background(argv: list[str], run_dir: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a trainer tied to nothing here (`run --detach`): its own session,
    stderr into RUN_DIR/stderr.log. Its event stream is a pipe the caller reads
    for the first event and then closes: events.jsonl has them all anyway."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / STDERR_FILE, "ab") as stderr:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
            errors="replace",
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )


def first_event(process: subprocess.Popen, timeout: float) -> dict | None:
    """The first event on a process's stdout; None if it ends, or says nothing within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([process.stdout], [], [], left)[0]:
            return None
        line = process.stdout.readline()
        if not line:
            return None  # it exited
        try:
            return decode(line)
        except ProtocolError:
            continue
    return None


class EngineProcess:
    """One engine process (a training job, an evaluation, an export, a sampler, a data prep), with its
    events delivered to a callback.

    `on_event` is called on the reader thread for every event, in order. Lines
    on stdout that are not events (they should not happen) arrive as `log`
    events; stderr lines go to `on_stderr` and into `stderr_tail`.
    """

    def __init__(
        self,
        argv: list[str],
        run_dir: Path,
        on_event: EventHandler,
        on_stderr: Callable[[str], None] | None = None,
        detach: bool = False,
        env: dict | None = None,
        interactive: bool = False,
        on_exit: Callable[[int], None] | None = None,
    ):
        self.argv = argv
        self.run_dir = Path(run_dir)
        self.on_event = on_event
        self.on_stderr = on_stderr
        self.detach = detach  # own session: Ctrl-C in our terminal does not reach it
        self.env = env
        self.interactive = interactive  # stdin is a pipe we write to (the sampler's --serve mode)
        self.on_exit = on_exit  # called on the reader thread with the exit code, after the last event
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self.process: subprocess.Popen | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> EngineProcess:
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if self.interactive else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=env,
            start_new_session=self.detach,
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, name="engine-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name="engine-stderr", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def _read_stdout(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if not line:
                continue
            try:
                event = decode(line)
            except ProtocolError:
                event = make("log", message=line, stream="stdout")
            self.on_event(event)
        if self.on_exit:
            self.on_exit(self.process.wait())

    def _read_stderr(self) -> None:
        assert self.process and self.process.stderr
        for line in self.process.stderr:
            line = line.rstrip("\n")
            self.stderr_tail.append(line)
            if self.on_stderr:
                self.on_stderr(line)

    def send(self, cmd: str, **fields) -> None:
        """Send a command (stop, pause, resume, checkpoint, sample) to the trainer."""
        send_command(self.run_dir, cmd, **fields)

    def write_line(self, obj: dict) -> None:
        """One JSON line to an interactive process's stdin (e.g. a sampler in --serve mode)."""
        assert self.process and self.process.stdin, "start the process with interactive=True"
        self.process.stdin.write(json.dumps(obj) + "\n")
        self.process.stdin.flush()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def poll(self) -> int | None:
        return self.process.poll() if self.process else None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process and for its output to be fully read."""
        assert self.process
        code = self.process.wait(timeout)
        for t in self._threads:
            t.join()
        return code

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()

    def signal(self, signum: int) -> None:
        """Signal the trainer's whole process group (torchrun and its workers
        too), as a terminal would; for one started with detach=True."""
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:  # it just ended
                pass


@dataclass
class JobResult:
    """How an engine process ended: its exit code, its last `error` event, the end of its stderr."""

    code: int
    error: dict | None = None
    stderr_tail: list[str] = field(default_factory=list)


def run_job(
    argv: list[str],
    on_event: EventHandler,
    run_dir: Path = Path("."),
    on_stderr: Callable[[str], None] | None = None,
    env: dict | None = None,
    timeout: float | None = None,
) -> JobResult:
    """Run an engine process to its end (a CLI verb's job): every event to on_event, in order, on the
    reader thread; the last `error` event (one sentence and a hint, process_frame.py) in the result."""
    errors: list[dict] = []

    def deliver(event: dict) -> None:
        if event["event"] == "error":
            errors.append(event)
        on_event(event)

    process = EngineProcess(argv, run_dir, on_event=deliver, on_stderr=on_stderr, env=env).start()
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return JobResult(code, errors[-1] if errors else None, list(process.stderr_tail))
