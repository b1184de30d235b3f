"""QuitScreen: runs are still training; stop them, or leave them running headless."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class QuitScreen(ModalScreen[str]):
    """Dismisses with "stop", "leave" or "cancel"."""

    BINDINGS = [
        Binding("s", "choose('stop')", "Stop and quit", id="quit.stop"),
        Binding("l", "choose('leave')", "Leave running", id="quit.leave"),
        Binding("escape", "choose('cancel')", "Cancel", id="quit.cancel"),
    ]

    def __init__(self, names: list[str]):
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog"):
            runs = ", ".join(self.names)
            yield Static(
                f"Still training: {runs}\n\n"
                "Stop: the trainer saves a checkpoint, then finishes, then the app quits.\n"
                f"Leave running: it goes on headless; `gptbench attach` follows it later.",
                id="quit-text",
            )
            with Horizontal(id="quit-buttons"):
                yield Button("Stop and quit (s)", id="stop", variant="error")
                yield Button("Leave running (l)", id="leave", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
