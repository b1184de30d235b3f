"""Sampling from a finished run: a sampler subprocess that serves one checkpoint.

`python -m workbench.engine.sampler --run-dir D --checkpoint best|last --serve`
loads the model once, reads one JSON `sample` command per line on stdin and
answers with the same `sample` / `error` events a live trainer sends. Its
stdout and stderr are read on their own threads (like the trainer's), so the
UI never blocks on it.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from textual.message_pump import MessagePump

from ..events import ProtocolError, command, decode, make
from .messages import EventBatch, SamplerExited


def sampler_command(run_dir: Path, checkpoint: str) -> list[str]:
    return [sys.executable, "-m", "workbench.engine.sampler", "--run-dir", str(run_dir), "--checkpoint", checkpoint, "--serve"]


class CheckpointSampler:
    def __init__(self, target: MessagePump, run_dir: Path, checkpoint: str):
        self.target = target
        self.run_dir = Path(run_dir)
        self.checkpoint = checkpoint  # "best" or "last"
        self.batch = EventBatch(target, "sampler")
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=50)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            sampler_command(self.run_dir, self.checkpoint),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for target in (self._read_stdout, self._read_stderr):
            threading.Thread(target=target, name=f"sampler-{target.__name__}", daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                self.batch.add_event(decode(line))
            except ProtocolError:
                self.batch.add_event(make("log", message=line))
        code = self.process.wait()
        self.target.post_message(SamplerExited(self, code, list(self.stderr_tail)))

    def _read_stderr(self) -> None:
        assert self.process and self.process.stderr
        for line in self.process.stderr:
            self.stderr_tail.append(line.rstrip("\n"))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ask(self, **fields) -> None:
        """Send one sample request; BrokenPipeError if the sampler has died."""
        assert self.process and self.process.stdin
        self.process.stdin.write(json.dumps(command("sample", **fields)) + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        """A sampler holds no state worth saving: end it without waiting."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
