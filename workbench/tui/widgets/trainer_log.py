"""TrainerLog: the trainer's log, its notable events (run_state.describe) and its stderr, as they come."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from ...run_state import describe

MAX_LINES = 2000


class TrainerLog(RichLog):
    """RichLog wraps a line when it is written, at no more than the app console's width (80
    columns in a test) however wide the log is; so the log keeps its lines and wraps them
    itself at its own width, again whenever that changes."""

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id, max_lines=MAX_LINES, wrap=True, markup=False)
        self.border_title = "log"
        self._status = ""
        self._lines: deque[Text] = deque(maxlen=MAX_LINES)
        self._wrapped_at = 0  # the width the lines on screen were wrapped at (0: not laid out yet)
        self.last_line = Text("")  # for the one-line log of a small screen

    def on_resize(self, event: Resize) -> None:
        width = self.scrollable_content_region.width
        if width and width != self._wrapped_at:
            self._wrapped_at = width
            self.clear()
            for line in self._lines:
                self.write(line, width=width)

    def add_events(self, events: list[dict]) -> None:
        for event in events:
            if event["event"] == "status":
                # The trainer re-announces its state at phase boundaries; log changes only.
                if event.get("state") == self._status:
                    continue
                self._status = event.get("state", "")
            try:
                line = describe(event)
            except (KeyError, TypeError, ValueError):
                line = (f"skipped a malformed {event['event']} event", "bold red")
            if line is not None:
                self.add_line(Text(*line))

    def add_stderr(self, lines: list[str]) -> None:
        for line in lines:
            self.add_line(Text(line, style="dim"))

    def add_line(self, line: Text) -> None:
        self._lines.append(line)
        self.last_line = line
        if self._wrapped_at:
            self.write(line, width=self._wrapped_at)
