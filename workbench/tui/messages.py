"""Messages that carry what happens in subprocesses to the screens.

They are posted from reader threads and thread workers (`post_message` is
thread-safe) and handled on the UI's event loop, so no widget is ever touched
from another thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from textual.message import Message
from textual.message_pump import MessagePump


class EventBatch:
    """Collects events and stderr lines on reader threads for the UI to take in bursts.

    The first item after a drain posts one `OutputArrived`; everything that
    arrives before the UI gets to it rides along in the same batch. The reader
    thread never waits on the UI, and a burst of step or sample events costs the
    UI one message, not one per event.
    """

    def __init__(self, target: MessagePump, source: str):
        self.target = target
        self.source = source  # "trainer" or "sampler"
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._stderr: list[str] = []
        self._posted = False

    def add_event(self, event: dict) -> None:
        self._add(self._events, event)

    def add_stderr(self, line: str) -> None:
        self._add(self._stderr, line)

    def _add(self, bucket: list, item) -> None:
        with self._lock:
            bucket.append(item)
            if self._posted:
                return
            self._posted = True
        self.target.post_message(OutputArrived(self))

    def drain(self) -> tuple[list[dict], list[str]]:
        with self._lock:
            events, self._events = self._events, []
            stderr, self._stderr = self._stderr, []
            self._posted = False
        return events, stderr


@dataclass
class OutputArrived(Message):
    """New events and/or stderr lines are waiting in `batch`."""

    batch: EventBatch


@dataclass
class TrainerExited(Message):
    """The trainer process we started has exited (its output is fully read)."""

    exit_code: int
    stderr_tail: list[str]


@dataclass
class TrainerLiveness(Message):
    """Whether a trainer listens on the run's control channel changed."""

    live: bool


@dataclass
class SamplerExited(Message):
    """A checkpoint sampler subprocess exited."""

    sampler: object
    exit_code: int
    stderr_tail: list[str]
