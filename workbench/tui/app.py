"""The gptbench app: pick a preset, watch it train, talk to it, compare runs.

A pure UI process: it never imports torch. Training and checkpoint sampling
run in subprocesses that talk the event protocol (see workbench/events.py).

    GPTBenchApp
      PickerScreen   presets, config editing, launch
      RunScreen      one run: Watch (plots, stats, log) and Talk (sampling)
      RunsScreen     the runs directory: open, attach, compare
      CompareScreen  any metric of several runs overlaid, and their config differences
      SweepsScreen   a sweep's trials live, every trial's val curve, one colour per setting
      QuitScreen     stop or leave running the runs launched here
      StoppingScreen the countdown while they stop; kill one that does not
      HelpScreen     every key of the screen below it (`?`)

Run screens of trainers launched here are installed (kept alive when you go
back) because they hold the trainer's pipe; the others are made on demand.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual.actions import parse as parse_action
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive

from .. import presets
from ..launcher import trainer_command
from ..runs import new_run_dir, require_run_dir
from .estimate import guess_device_kind
from .palette import ScreenActions
from .plot_options import PlotOptions
from .screens.compare import CompareScreen
from .screens.help import HelpScreen
from .screens.picker import PickerScreen
from .screens.quit import QuitScreen, StoppingScreen
from .screens.run import RunScreen
from .screens.runs import RunsScreen
from .screens.sweeps import SweepsScreen

# After "stop and quit", how long to wait for trainers to checkpoint and exit before offering to kill them.
STOP_TIMEOUT_S = 60

# What a view-only app (`gptbench serve --view-only`) refuses: the actions that start, steer or end
# training or change a config. Watching, sampling and moving around stay.
CONTROL_ACTIONS = frozenset({"launch", "pause", "resume", "stop", "checkpoint", "resume_run", "reset_key"})
VIEW_ONLY_ENV = "GPTBENCH_VIEW_ONLY"  # set to 1 by `gptbench serve --view-only` for its app processes


class GPTBenchApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "gptbench"
    COMMANDS = App.COMMANDS | {ScreenActions}
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Quit (asks first if a run launched here still trains)", id="app.quit"),
        Binding("question_mark", "help", "Help", tooltip="Every key of this screen, one line each", id="app.help"),
    ]

    # How every plot is drawn; the run and compare screens watch it.
    plot_options: reactive[PlotOptions] = reactive(PlotOptions())

    def __init__(
        self,
        attach: Path | None = None,
        preset: str | None = None,
        overrides: list[str] = (),
        view_only: bool = False,
        sweep: Path | None = None,
    ):
        """`attach`: open that run. `preset`: launch it (with `overrides`) at once. `view_only`: watch, never steer.
        `sweep`: show that sweep."""
        super().__init__()
        self.view_only = view_only
        self.attach, self.sweep = attach, sweep
        self.preset, self.overrides = preset, list(overrides)
        self.run_screens: dict[Path, RunScreen] = {}  # the installed ones, by run dir
        self.quitting = False
        self.stop_timeout_s = STOP_TIMEOUT_S
        self.sample_settings: dict[str, dict[str, str]] = {}  # Talk's settings as last typed, per preset

    def on_mount(self) -> None:
        self.push_screen(PickerScreen())
        if self.sweep:
            self.show_sweeps(self.sweep)
        elif self.attach:
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

    def launch_sweep(self, preset: str, grid: list[str], sets: list[str]) -> None:
        """`gptbench sweep` in the background over the picker's several-valued keys; ConfigError if refused."""
        from ..commands.sweep import plan_sweep, start_in_background, sweeps_root
        from ..sweep.spec import build_spec, default_name, write_spec

        name = default_name(build_spec(preset, grid=grid, sets=sets))
        sweep_dir = new_run_dir(name, root=sweeps_root())  # a new sweep per launch
        spec, sweep_dir, url, _ = plan_sweep(
            preset, grid, [], None, 1, sets, "val_loss", "none", None, "auto", sweep_dir, None
        )
        sweep_dir.mkdir(parents=True)
        write_spec(sweep_dir, spec, url)
        start_in_background(spec, sweep_dir, "auto", url)
        self.show_sweeps(sweep_dir)

    def show_sweeps(self, sweep_dir: Path | None = None) -> None:
        self.push_screen(SweepsScreen(sweep_dir))

    def show_picker(self) -> None:
        while len(self.screen_stack) > 2:  # the default screen, then the picker
            self.pop_screen()

    def compare_runs(self, paths: list[Path]) -> None:
        self.push_screen(CompareScreen(paths))

    def get_system_commands(self, screen):
        """Textual's palette commands, with Quit saying what our quit does (it asks first while a run trains)."""
        quit_help = next(b.tooltip for b in self.BINDINGS if b.id == "app.quit")
        for command in super().get_system_commands(screen):
            yield command._replace(help=quit_help) if command.title == "Quit" else command

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def allows(self, what: str) -> bool:
        """False, and a message saying why, for a control in a view-only app."""
        if self.view_only:
            self.notify(
                f"View only: {what} refused. This app was served with `gptbench serve --view-only`: "
                "watching and sampling only.",
                severity="warning",
                timeout=6,
            )
        return not self.view_only

    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        """Every key and palette command passes here, so view-only mode refuses controls in this one place."""
        name = parse_action(action)[1] if isinstance(action, str) else action[1]
        if name in CONTROL_ACTIONS and not self.allows(name.replace("_", " ")):
            return True  # handled: refused
        return await super().run_action(action, default_namespace, namespaces)

    def report_error(self, what: str, error: BaseException | None) -> None:
        """The one path for failures in the background: a notification; the traceback goes to the Textual log."""
        self.log.error(what, error)
        self.notify(f"{what}: {type(error).__name__}: {error}" if error else what, severity="error", timeout=10)

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
            # Never quit while a trainer the user asked to stop still runs: wait, then offer to kill it.
            self.quitting = True
            training = self.training_here()
            for screen in training:
                screen.stop_for_quit()
            self.push_screen(StoppingScreen(training, self.stop_timeout_s), self._stopping_chosen)

    def _stopping_chosen(self, choice: str | None) -> None:
        if choice == "kill":
            for screen in self.training_here():
                screen.kill_trainer()
        else:  # back to the app; the trainers go on stopping
            self.quitting = False

    def run_ended(self, screen: RunScreen) -> None:
        if self.quitting and not self.training_here():
            self.exit()


def run_app(
    attach: Path | None = None, preset: str | None = None, overrides: list[str] = (), sweep: Path | None = None
) -> None:
    """`gptbench` opens the picker; `gptbench attach RUN_DIR` opens that run;
    `gptbench run PRESET` launches it. Mistakes raise ConfigError before the
    app takes the screen over."""
    if attach is not None:
        require_run_dir(attach)
    if preset is not None:
        presets.resolve(presets.load(preset), list(overrides), guess_device_kind())
    view_only = os.environ.get(VIEW_ONLY_ENV) == "1"
    GPTBenchApp(attach=attach, preset=preset, overrides=overrides, view_only=view_only, sweep=sweep).run()
