"""ConfirmLaunchScreen: a run that would take over an hour here asks before it starts."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmLaunchScreen(ModalScreen[bool]):
    """Dismisses with True (launch) or False.

    Cancel is the default (focused: enter cancels), and launching takes `y`, a key of
    its own: `l` pressed twice, or `l` and then enter, must not start a run of days."""

    AUTO_FOCUS = "#cancel"
    BINDINGS = [
        Binding("y", "choose(True)", "Launch anyway", id="confirm.launch"),
        Binding("escape,n", "choose(False)", "Cancel", id="confirm.cancel"),
    ]

    def __init__(self, preset: str, estimate: str, device: str):
        super().__init__()
        self.text = (
            f"{preset} would train for {estimate} on this machine's {device} "
            "(a rough estimate from the model's FLOPs and the steps).\n\n"
            "Launch it anyway? Fewer steps (train.max_steps) or a smaller model make it shorter."
        )

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.text, id="confirm-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel (esc)", id="cancel", variant="primary")
                yield Button("Launch anyway (y)", id="launch", variant="warning")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "launch")

    def action_choose(self, launch: bool) -> None:
        self.dismiss(launch)
