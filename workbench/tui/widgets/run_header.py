"""RunHeader: one line naming the run, its status badge and where it comes from."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ..run_state import RunState


class RunHeader(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static(id="status-badge")
        yield Static(id="run-title")

    def show(self, state: RunState, source: str) -> None:
        """`source` says where the events come from: launched here, attached, replay."""
        badge = self.query_one("#status-badge", Static)
        badge.update(f" {state.status.upper()} ")
        badge.set_classes(f"status-{state.status}")
        title = Text.assemble((state.name, "bold"), (f"  {state.preset}" if state.preset else ""), (f"  · {source}", "dim"))
        self.query_one("#run-title", Static).update(title)
