"""Where the trainer's events go: the run's events.jsonl and the live pipe."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from ..events import encode, make
from ..process_frame import EventWriter
from ..run_files import EVENTS_FILE


class EventLog:
    """Append events to RUN_DIR/events.jsonl and echo them to a stream.

    Each event is one write of one line, flushed at once, so a reader tailing
    the file (an attached app) never waits for a buffer to fill. Step events
    arrive coalesced (one per log interval), so this is a handful of writes a
    second at most. Only the main process writes; other ranks get `enabled=False`.
    """

    def __init__(self, run_dir: Path, stream: IO[str] | None, enabled: bool = True):
        self.enabled = enabled
        self.live = EventWriter(stream) if stream is not None else None  # drops a reader that went away
        self.path = Path(run_dir) / EVENTS_FILE
        self.file = None  # opened by the first event: a run refused before it writes nothing
        self.written = 0

    def emit(self, event: str, **fields: Any) -> dict:
        evt = make(event, **fields)
        if not self.enabled:
            return evt
        line = encode(evt) + "\n"
        if self.file is None:
            self.file = open(self.path, "a", encoding="utf-8")
            if not _ends_a_line(self.path):
                # A trainer killed mid-write (or a full disk) left half a line: end it,
                # so that readers skip that one line rather than our first event too.
                self.file.write("\n")
        self.file.write(line)
        self.file.flush()
        self.written += 1
        self._echo(line)
        return evt

    def tell(self, event: str, **fields: Any) -> dict:
        """An event for the live stream only, not the run's record (e.g. why a resume was refused)."""
        evt = make(event, **fields)
        if self.enabled:
            self._echo(encode(evt) + "\n")
        return evt

    def _echo(self, line: str) -> None:
        if self.live is not None:
            self.live.write(line)  # a watcher that went away is dropped; the file still has everything

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", message=message, level=level)

    def close(self) -> None:
        if self.file:
            self.file.close()


def _ends_a_line(path: Path) -> bool:
    """True for an empty file or one whose last byte is a newline."""
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return True
        f.seek(-1, 2)
        return f.read(1) == b"\n"
