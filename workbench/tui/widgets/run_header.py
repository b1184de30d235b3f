"""RunHeader: one line naming the run, its status badge (a command waiting for its answer too) and where it comes
from."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ...run_state import RunState


class RunHeader(Horizontal):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._shown: tuple = ()

    def compose(self) -> ComposeResult:
        yield Static(id="status-badge")
        yield Static(id="run-title")

    def show(self, state: RunState, source: str) -> None:
        """`source` says where the events come from: launched here, attached, replay."""
        wait = state.boundary_wait if state.requested else None  # "pause requested: after this micro-step, ~40 s"
        if (state.badge, state.status, state.preset, source, wait) == self._shown:
            return  # called on every redraw tick; the header rarely changes
        self._shown = (state.badge, state.status, state.preset, source, wait)
        badge = self.query_one("#status-badge", Static)
        badge.update(f" {state.badge.upper()} ")
        badge.set_classes("status-requested" if state.requested else f"status-{state.status}")
        title = Text.assemble(
            (f"after this micro-step, {wait}  " if wait else "", "bold"),  # the badge says what was requested
            (state.name, "bold"),
            (f"  {state.preset}" if state.preset else ""),
            (f"  · {source}", "dim"),
        )
        self.query_one("#run-title", Static).update(title, layout=False)
