"""Quitting while runs train.

- QuitScreen: stop them, or leave them running headless.
- StoppingScreen: a countdown while they stop, then an offer to kill the ones that did not.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ...run_files import LAST_CKPT


def what_a_kill_keeps(screens: list) -> str:
    """The truth about resuming after a kill: it depends on a last.pt being there."""
    saved = [s.run_dir.name for s in screens if (s.run_dir / LAST_CKPT).exists()]
    if len(saved) == len(screens):
        return "its last checkpoint stays, `gptbench run --resume` goes on from it."
    if not saved:
        return "it has saved no checkpoint yet (no last.pt), so a kill loses its training so far."
    return f"{', '.join(saved)} can go on from last.pt (`gptbench run --resume`); the others saved none yet."


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


class StoppingScreen(ModalScreen[str]):
    """Counts down while the runs stop; then offers to kill the ones that have not.

    Dismisses with "kill" or "cancel" (back to the app). The app quits by
    itself once every trainer has exited, so this screen never has to say so.
    """

    BINDINGS = [
        Binding(
            "k",
            "choose('kill')",
            "Kill",
            tooltip="Kill the trainer now (its last checkpoint, if any, stays)",
            id="stopping.kill",
        ),
        Binding("w", "wait", "Wait longer", tooltip="Count down again", id="stopping.wait"),
        Binding(
            "escape",
            "choose('cancel')",
            "Back",
            tooltip="Back to the app; the runs go on stopping",
            id="stopping.cancel",
        ),
    ]

    def __init__(self, screens: list, timeout_s: float):
        """`screens`: the RunScreens of the trainers asked to stop."""
        super().__init__()
        self.screens = screens
        self.timeout_s = timeout_s
        self.left_s = timeout_s

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog"):
            yield Static(id="stopping-text")
            with Horizontal(id="quit-buttons"):
                yield Button("Kill (k)", id="kill", variant="error")
                yield Button("Wait longer (w)", id="wait", variant="primary")
                yield Button("Back (esc)", id="cancel")

    def on_mount(self) -> None:
        self._show()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        self.left_s = max(0.0, self.left_s - 1)
        self._show()

    @property
    def overdue(self) -> bool:
        return self.left_s <= 0

    def _show(self) -> None:
        running = [s for s in self.screens if s.trainer_running]
        runs = "\n".join(f"  {s.run_dir.name}: {s.state.badge}" for s in running)
        if self.overdue:
            text = (
                f"Still running after {self.timeout_s:.0f} s:\n{runs}\n\n"
                f"Kill: end the trainer now; {what_a_kill_keeps(running)}\n"
                "Wait longer: count down again."
            )
        else:
            text = (
                "Stopping (the trainer saves a checkpoint, then exits); the app quits when it has:\n"
                f"{runs}\n\nWaiting {self.left_s:.0f} s…"
            )
        self.query_one("#stopping-text", Static).update(text)
        for button in ("kill", "wait"):
            self.query_one(f"#{button}").display = self.overdue
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "wait" or (action == "choose" and parameters == ("kill",)):
            return self.overdue
        return True

    def action_wait(self) -> None:
        self.left_s = self.timeout_s
        self._show()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "wait":
            self.action_wait()
        else:
            self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
