"""TrainerLog: the trainer's log, its notable events (run_state.describe) and its stderr, as they come."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from ...run_state import describe


class TrainerLog(RichLog):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id, max_lines=2000, wrap=True, markup=False)
        self.border_title = "log"
        self._status = ""
        self.last_line = Text("")  # for the one-line log of a small screen

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
        self.write(line)
        self.last_line = line
