"""The gptbench app: pick a preset, watch it train, talk to it, compare runs.

A pure UI process: it never imports torch. Training and checkpoint sampling
run in subprocesses that talk the event protocol (see workbench/events.py).

    GPTBenchApp
      PickerScreen   presets, config editing, launch
      RunScreen      one run: Watch (plots, stats, log) and Talk (sampling)
      RunsScreen     the runs directory: open, attach, compare
      CompareScreen  loss curves of several runs overlaid
      QuitScreen     stop or leave running the runs launched here

Run screens of trainers launched here are installed (kept alive when you go
back) because they hold the trainer's pipe; the others are made on demand.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from .. import presets
from ..launcher import trainer_command
from ..runs import new_run_dir, require_run_dir
from .estimate import guess_device_kind
from .palette import ScreenActions
from .screens.compare import CompareScreen
from .screens.picker import PickerScreen
from .screens.quit import QuitScreen
from .screens.run import RunScreen
from .screens.runs import RunsScreen

# After "stop and quit", how long to wait for trainers to checkpoint and exit.
STOP_TIMEOUT_S = 120


class GPTBenchApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "gptbench"
    COMMANDS = App.COMMANDS | {ScreenActions}
    BINDINGS = [Binding("q", "quit", "Quit", tooltip="Quit (asks first if a run launched here still trains)", id="app.quit")]

    def __init__(self, attach: Path | None = None, preset: str | None = None, overrides: list[str] = ()):
        """`attach`: open that run. `preset`: launch it (with `overrides`) at once."""
        super().__init__()
        self.attach = attach
        self.preset, self.overrides = preset, list(overrides)
        self.run_screens: dict[Path, RunScreen] = {}  # the installed ones, by run dir
        self.quitting = False

    def on_mount(self) -> None:
        self.push_screen(PickerScreen())
        if self.attach:
            self.open_run(self.attach)
        elif self.preset:
            self.launch_run(self.preset, self.overrides)

    # -- navigation, called by the screens -----------------------------------

    def launch_run(self, preset: str, overrides: list[str]) -> None:
        run_dir = new_run_dir(preset)
        screen = RunScreen(run_dir, trainer_command(preset, run_dir, overrides))
        self.keep_run_screen(screen)
        self.push_screen(screen)

    def keep_run_screen(self, screen: RunScreen) -> None:
        """The screen holds a trainer's pipe: keep it when it leaves the stack."""
        if screen.run_dir not in self.run_screens:
            self.run_screens[screen.run_dir] = screen
            self.install_screen(screen, name=f"run:{screen.run_dir}")

    def open_run(self, run_dir: Path) -> None:
        screen = self.run_screens.get(Path(run_dir)) or RunScreen(Path(run_dir))
        if screen in self.screen_stack:
            while self.screen is not screen:
                self.pop_screen()
        else:
            self.push_screen(screen)

    def show_runs(self) -> None:
        self.push_screen(RunsScreen())

    def show_picker(self) -> None:
        while len(self.screen_stack) > 2:  # the default screen, then the picker
            self.pop_screen()

    def compare_runs(self, paths: list[Path]) -> None:
        self.push_screen(CompareScreen(paths))

    # -- quitting -------------------------------------------------------------

    def training_here(self) -> list[RunScreen]:
        return [s for s in self.run_screens.values() if s.link.owns_process and s.trainer_running]

    async def action_quit(self) -> None:
        training = self.training_here()
        if not training:
            self.exit()
            return
        self.push_screen(QuitScreen([s.run_dir.name for s in training]), self._quit_chosen)

    def _quit_chosen(self, choice: str | None) -> None:
        if choice == "leave":
            self.exit()
        elif choice == "stop":
            self.quitting = True
            for screen in self.training_here():
                screen.stop_for_quit()
            self.notify("Waiting for the trainer to checkpoint and stop…", timeout=STOP_TIMEOUT_S)
            self.set_timer(STOP_TIMEOUT_S, self.exit)

    def run_ended(self, screen: RunScreen) -> None:
        if self.quitting and not self.training_here():
            self.exit()


def run_app(attach: Path | None = None, preset: str | None = None, overrides: list[str] = ()) -> None:
    """`gptbench` opens the picker; `gptbench attach RUN_DIR` opens that run;
    `gptbench run PRESET` launches it. Mistakes raise ConfigError before the
    app takes the screen over."""
    if attach is not None:
        require_run_dir(attach)
    if preset is not None:
        presets.resolve(presets.load(preset), list(overrides), guess_device_kind())
    GPTBenchApp(attach=attach, preset=preset, overrides=overrides).run()
