"""The command channel: a FIFO in the run directory, no network.

A running trainer owns `RUN_DIR/control.fifo`. Anyone on the machine who can
write to the run directory (the app that launched it, or a later `gptbench
attach`) sends one JSON command per line; the trainer polls the FIFO between
steps without blocking. Lines shorter than PIPE_BUF (4096 bytes) are written
atomically, so several senders never interleave.

Plain Python: imported by the trainer and the UI alike.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

from .events import command

CONTROL_FILE = "control.fifo"
MAX_COMMAND_BYTES = 4000  # under PIPE_BUF, so one write is one atomic line


class RunNotLive(RuntimeError):
    """No trainer is listening on this run directory."""


class CommandInbox:
    """The trainer's end: a non-blocking reader of the run's control FIFO."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / CONTROL_FILE
        if self.path.exists() and not stat.S_ISFIFO(self.path.stat().st_mode):
            self.path.unlink()
        if not self.path.exists():
            os.mkfifo(self.path, 0o600)
        self._read_fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        # Holding a writer open ourselves means reads see "no data yet" (EAGAIN)
        # instead of end-of-file whenever no sender happens to be connected.
        self._keepalive_fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        self._buffer = b""

    def poll(self) -> list[dict]:
        """Every complete command that has arrived; never blocks."""
        while True:
            try:
                chunk = os.read(self._read_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        commands = []
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # a garbled line must never stop training
            if isinstance(obj, dict) and "cmd" in obj:
                commands.append(obj)
        return commands

    def close(self) -> None:
        """Stop listening; senders now get RunNotLive. Safe to call twice."""
        for fd in (self._read_fd, self._keepalive_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._keepalive_fd = -1
        self.path.unlink(missing_ok=True)


def send_command(run_dir: str | Path, cmd: str, **fields) -> None:
    """Send one command to the trainer of `run_dir`; RunNotLive if none listens."""
    path = Path(run_dir) / CONTROL_FILE
    data = (json.dumps(command(cmd, **fields)) + "\n").encode()
    if len(data) > MAX_COMMAND_BYTES:
        raise ValueError(
            f"command too long ({len(data)} bytes); keep prompts under {MAX_COMMAND_BYTES - 200} characters"
        )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise RunNotLive(f"{run_dir} has no running trainer") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # the FIFO exists but nobody reads it: the trainer died
            raise RunNotLive(f"{run_dir} has no running trainer") from None
        raise
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def is_live(run_dir: str | Path) -> bool:
    """True when a trainer is reading this run's control FIFO right now."""
    path = Path(run_dir) / CONTROL_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True
