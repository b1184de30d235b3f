"""Sampling from a finished run: a sampler subprocess that serves one checkpoint.

`python -m workbench.engine.sampler --run-dir D --checkpoint best|last --serve`
loads the model once, reads one JSON `sample` command per line on stdin and
answers with the same `sample` / `error` events a live trainer sends. Its
stdout and stderr are read on their own threads (like the trainer's), so the
UI never blocks on it.
"""

from __future__ import annotations

from pathlib import Path

from textual.message_pump import MessagePump

from ..events import command
from ..launcher import EngineProcess, sampler_command
from .messages import EventBatch, SamplerExited


class CheckpointSampler:
    def __init__(self, target: MessagePump, run_dir: Path, checkpoint: str):
        self.target = target
        self.run_dir = Path(run_dir)
        self.checkpoint = checkpoint  # "best" or "last"
        self.batch = EventBatch(target, "sampler")
        self.process = EngineProcess(
            sampler_command(self.run_dir, ["--checkpoint", checkpoint, "--serve"]),
            self.run_dir,
            on_event=self.batch.add_event,
            on_exit=lambda code: target.post_message(
                SamplerExited(sampler=self, exit_code=code, stderr_tail=list(self.process.stderr_tail))
            ),
            interactive=True,
        )

    @property
    def stderr_tail(self) -> list[str]:
        return list(self.process.stderr_tail)

    def start(self) -> None:
        self.process.start()

    @property
    def running(self) -> bool:
        return self.process.poll() is None and self.process.process is not None

    def ask(self, **fields) -> None:
        """Send one sample request; BrokenPipeError if the sampler has died."""
        self.process.write_line(command("sample", **fields))

    def close(self) -> None:
        """A sampler holds no state worth saving: end it without waiting."""
        self.process.kill()
