"""RunScreen: one run, live or finished: Watch (dashboard), Talk (sampling), Config.

The screen owns the orchestration: it connects to the trainer (a
`LaunchedTrainer` it started, or a `FollowedRun` read from the run directory),
feeds every event into the `RunState`, routes sample answers to the console,
and turns key presses into commands on the run's control channel. Widgets only
render: the numbers redraw from the state once a second and the plots as
often as a CPU budget allows (see FramePacer), however fast events arrive,
except for what a person is waiting to see: a command's "requested" state,
the first data of a plot, and a replay, which draw at once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.message import Message
from textual.widgets import Footer, TabbedContent, TabPane

from ...config import ConfigError
from ...control import RunNotLive
from ...events import make
from ...launcher import trainer_command
from ...run_files import BEST_CKPT, CONFIG_FILE, LAST_CKPT, read_json
from ...run_state import RunState
from ..checkpoint_sampler import CheckpointSampler
from ..config_values import flat_values, preset_values
from ..frame_pacer import FramePacer
from ..messages import OutputArrived, SamplerExited, TrainerExited, TrainerLiveness
from ..trainer_link import FollowedRun, LaunchedTrainer
from ..widgets.metric_plot import MetricPlot
from ..widgets.run_config import RunConfig
from ..widgets.run_dashboard import RunDashboard
from ..widgets.run_header import RunHeader
from ..widgets.sample_console import SampleConsole
from .workbench_screen import PlotScreen

NUMBERS_S = 1.0  # stats and header: cheap text, redrawn once a second
PLOTS_CHECK_S = 0.5  # plots: redrawn when the CPU budget allows; this is how often we ask
CHECKPOINTS = {"best": BEST_CKPT, "last": LAST_CKPT}


@dataclass
class ConfigLoaded(Message):
    values: dict[str, str]
    preset: dict[str, str] | None
    note: str


class RunScreen(PlotScreen):
    HELP_TITLE = "run screen"
    ESCAPE_TO_MINIMIZE = False  # escape puts a plot's cursor away first (see action_back)
    BINDINGS = [
        Binding("p", "pause", "Pause", tooltip="Pause training (the trainer waits between steps)", id="run.pause"),
        Binding("p", "resume", "Resume", tooltip="Resume training", id="run.resume"),
        Binding("s", "stop", "Stop", tooltip="Stop training gracefully: checkpoint, then finish", id="run.stop"),
        Binding("c", "checkpoint", "Checkpoint", tooltip="Save a checkpoint now", id="run.checkpoint"),
        Binding(
            "R",
            "resume_run",
            "Resume run",
            tooltip="Resume the crashed run from its last checkpoint",
            id="run.resume_run",
        ),
        Binding("t", "show_tab('talk')", "Talk", tooltip="Sampling console: prompt the model", id="run.talk"),
        Binding("w", "show_tab('watch')", "Watch", tooltip="Dashboard: plots, stats, log", id="run.watch"),
        Binding(
            "f",
            "show_tab('config')",
            "Config",
            tooltip="The run's resolved config, keys changed from the preset marked",
            id="run.config",
        ),
        Binding(
            "m",
            "maximize_plot",
            "Max plot",
            tooltip="Maximise the focused plot (tab picks one; esc restores)",
            show=False,
            id="run.maximize",
        ),
        Binding(
            "i",
            "toggle_part('stats-line')",
            "Stats",
            tooltip="Fold the stats into one line, or unfold them",
            show=False,
            id="run.stats",
        ),
        Binding(
            "o",
            "toggle_part('log-line')",
            "Log",
            tooltip="Fold the log into one line, or unfold it",
            show=False,
            id="run.log",
        ),
        Binding(
            "u",
            "toggle_part('system')",
            "System",
            tooltip="Show or hide the system pane: CPU, RAM, trainer memory, GPU",
            id="run.system",
        ),
        Binding(
            "escape",
            "back",
            "Back",
            tooltip="Cancel the answer coming in (Talk), or back to the previous screen (the run keeps going)",
            show=False,
            id="run.back",
        ),
    ]

    def __init__(self, run_dir: Path, argv: list[str] | None = None):
        """With `argv`, start that trainer; without, follow the run directory."""
        super().__init__()
        self.run_dir = Path(run_dir)
        self.state = RunState(self.run_dir)
        self.link: LaunchedTrainer | FollowedRun = (
            LaunchedTrainer(self, argv, self.run_dir) if argv else FollowedRun(self, self.run_dir)
        )
        self.sampler: CheckpointSampler | None = None
        self.live_samples: set[str] = set()  # ids of prompts the live trainer answers (the others: the sampler)
        self.plot_pacer = FramePacer()
        self._config_shown_for: dict | None = None

    def compose(self) -> ComposeResult:
        yield RunHeader(id="run-header")
        with TabbedContent(initial="watch"):
            with TabPane("Watch", id="watch"):
                yield RunDashboard(self.state, id="dashboard")
            with TabPane("Talk", id="talk"):
                yield SampleConsole(id="console", kept=self.app.sample_settings)
            with TabPane("Config", id="config"):
                yield RunConfig(id="run-config")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._show_checkpoints()
        self.link.start()
        self.set_interval(NUMBERS_S, self._refresh_numbers)
        self.set_interval(PLOTS_CHECK_S, self._maybe_refresh_plots)
        self.redraw()

    def on_unmount(self) -> None:
        self._close_sampler()

    def on_screen_suspend(self) -> None:
        # Off the stack, not just under a dialog: a screen the app keeps (it holds a trainer's pipe) is never
        # unmounted, and its idle sampler would hold a process, and a share of the cores, until the app quits.
        if self not in self.app.screen_stack:
            self._close_sampler()

    def on_resize(self, event: Resize) -> None:
        self.query_one(RunDashboard).fit(event.size.width, event.size.height)
        self._refresh_numbers()

    # -- what the run is doing -----------------------------------------------

    @property
    def trainer_running(self) -> bool:
        """A trainer process is there to take commands."""
        return self.link.running

    @property
    def source(self) -> str:
        if self.link.owns_process:
            return "launched here"
        if self.link.running:
            return "attached, live"
        return "attached, the trainer has ended" if self.link.was_live else "replay from run dir"

    def _refresh_numbers(self) -> None:
        self.query_one(RunHeader).show(self.state, self.source)
        now = time.time() if self.trainer_running else None  # a live run's clock ticks between its events
        self.query_one(RunDashboard).refresh_numbers(resumable=self.resumable, now=now)

    def _maybe_refresh_plots(self) -> None:
        # A run that no longer trains draws at once (its curves change no more); a live one within the CPU budget.
        dashboard = self.query_one(RunDashboard)
        if dashboard.plots_waiting or not self.trainer_running or self.plot_pacer.frame_due():
            dashboard.refresh_plots()

    def redraw(self) -> None:
        """Everything, now: for state changes a person is waiting to see."""
        self._refresh_numbers()
        self.query_one(RunDashboard).refresh_plots()

    @property
    def resumable(self) -> bool:
        return self.state.crash is not None and not self.trainer_running and (self.run_dir / LAST_CKPT).exists()

    @on(OutputArrived)
    def _output(self, message: OutputArrived) -> None:
        events, stderr = message.batch.drain()
        console = self.query_one(SampleConsole)
        if message.batch.source == "sampler":
            for event in events:
                self._route_sample(console, event, from_sampler=True)
            return
        dashboard = self.query_one(RunDashboard)
        before = (self.state.status, self.state.requested)
        applied, logged = [], []
        for event in events:
            if self._route_sample(console, event, from_sampler=False):
                continue
            if self.state.apply(event):
                applied.append(event)
                logged.append(event)
            else:  # said in the log where it happened, and left out of the run's state
                logged.append(
                    make(
                        "error",
                        kind="events",
                        message=f"skipped a malformed {event['event']} event in events.jsonl",
                        hint="",
                    )
                )
        dashboard.add_log(logged, stderr)
        kinds = {e["event"] for e in applied}
        if "run_started" in kinds:
            console.set_task(self.state.preset, addition=self.state.config.get("data", {}).get("kind") == "addition")
            self._load_config()
        if "checkpoint" in kinds:
            self._show_checkpoints()
        self._detect_attached_crash()
        if (self.state.status, self.state.requested) != before:  # the badge and the footer's controls follow at once
            self.refresh_bindings()
            self._refresh_numbers()
        if dashboard.plots_waiting:  # the first points: no reason to wait for the pacer
            dashboard.refresh_plots()

    def _route_sample(self, console: SampleConsole, event: dict, from_sampler: bool) -> bool:
        """Hand sampling answers to the console; True if the event was one."""
        kind = event["event"]
        if kind == "sample":
            console.add_piece(event)
            return True
        if kind == "error" and (event.get("kind") == "prompt" or from_sampler):
            if "id" in event:
                console.fail(event["id"], event["message"], event.get("hint", ""))
            else:
                console.fail_pending(event["message"], event.get("hint", ""))
            return True
        return from_sampler  # the sampler's other events (logs) are not the run's

    @on(TrainerExited)
    def _trainer_exited(self, message: TrainerExited) -> None:
        # The exit code alone does not tell (a graceful stop exits 130); run_finished does.
        finished = self.state.finished
        if finished is None or finished["reason"] == "error":
            self.state.mark_crashed(message.exit_code, message.stderr_tail)
            self.query_one(RunDashboard).add_note(f"crashed: the trainer exited with code {message.exit_code}")
        self._run_changed()
        self.app.run_ended(self)

    @on(TrainerLiveness)
    def _liveness(self, message: TrainerLiveness) -> None:
        self._detect_attached_crash()
        self._run_changed()

    def _detect_attached_crash(self) -> None:
        """A run we only follow has died if nobody listens and it never said it finished."""
        link, state = self.link, self.state
        if (
            isinstance(link, FollowedRun)
            and link.live is False
            and state.started
            and not state.finished
            and not state.crash
        ):
            state.mark_crashed(None, [])
            self.query_one(RunDashboard).add_note("crashed: the trainer is gone and never said it finished")

    def _run_changed(self) -> None:
        self._show_checkpoints()
        self.refresh_bindings()
        self.redraw()

    # -- controls -----------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        running = self.trainer_running
        paused = self.state.status == "paused"
        pause_asked = self.state.requested == "pause"
        if action == "pause":
            return running and not paused and not pause_asked
        if action == "resume":  # also takes back a pause the trainer has not reached yet
            return running and (paused or pause_asked)
        if action in ("stop", "checkpoint"):
            if not running:
                return False
            return (
                self.state.status != "stopping" and self.state.requested != "stop"
            ) or None  # greyed out while it winds down
        if action == "resume_run":
            return self.resumable
        if action == "show_tab":  # offer the other tabs only
            return parameters[0] != self.query_one(TabbedContent).active
        if action in ("maximize_plot", "toggle_part"):
            return self.query_one(TabbedContent).active == "watch"
        return True

    def _send(self, cmd: str, **fields) -> bool:
        try:
            self.link.send(cmd, **fields)
        except (RunNotLive, OSError) as exc:
            self.notify(f"Could not send {cmd}: {exc}", severity="error")
            return False
        return True

    def _command(self, cmd: str) -> None:
        """Send a command and show it as requested at once, until the trainer's status answers it."""
        if self._send(cmd):
            self.state.request(cmd)
            self.refresh_bindings()
            self._refresh_numbers()

    def action_pause(self) -> None:
        self._command("pause")

    def action_resume(self) -> None:
        self._command("resume")

    def action_stop(self) -> None:
        self._command("stop")

    def action_checkpoint(self) -> None:
        if self._send("checkpoint"):
            self.notify("Checkpoint requested.", timeout=2)

    def stop_for_quit(self) -> None:
        """The app is quitting and the user chose to stop this run."""
        if self.trainer_running:
            self._command("stop")

    def kill_trainer(self) -> None:
        """The user gave up waiting for a stop: end the trainer now (last.pt stays)."""
        if isinstance(self.link, LaunchedTrainer):
            self.link.kill()

    def action_resume_run(self) -> None:
        """Start a new trainer that picks the crashed run up from last.pt."""
        self.link.close()
        self.link = LaunchedTrainer(self, trainer_command(None, self.run_dir, resume=True), self.run_dir)
        self.state.mark_resuming()
        self.link.start()
        self.app.keep_run_screen(self)
        self._run_changed()

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self.refresh_bindings()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        # Focus follows the tab: left inside the hidden tab, it would switch right back.
        self.query_one({"talk": "#prompt", "watch": "#plot-loss", "config": "#run-config-table"}[tab]).focus()
        if tab == "config":
            self._load_config()

    def action_maximize_plot(self) -> None:
        if self.maximized is not None:
            self.minimize()
            return
        plot = self.focused if isinstance(self.focused, MetricPlot) else self.query_one("#plot-loss", MetricPlot)
        plot.focus()
        self.maximize(plot, container=False)

    def action_toggle_part(self, part: str) -> None:
        self.query_one(RunDashboard).toggle(part)
        self._refresh_numbers()

    def action_back(self) -> None:
        if self.maximized is not None:
            self.minimize()
        elif self.query_one(TabbedContent).active == "talk":
            if self.query_one(SampleConsole).streaming_id:
                self._cancel_sample()
            else:
                self.action_show_tab("watch")
        elif self.query_one(TabbedContent).active == "config":
            self.action_show_tab("watch")
        elif len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    # -- the run's config -------------------------------------------------------

    def _load_config(self) -> None:
        if self.query_one(TabbedContent).active == "config" and self._config_shown_for is not self.state.config:
            self._config_shown_for = self.state.config
            self.read_config(self.state.config)

    @work(thread=True, exclusive=True, group="config", name="reading the run's config", exit_on_error=False)
    def read_config(self, config: dict) -> None:
        config = config or read_json(self.run_dir / CONFIG_FILE)
        if not config:
            self.post_message(
                ConfigLoaded(
                    values={}, preset=None, note="this run has no config yet (no run_started event, no config.json)"
                )
            )
            return
        try:
            preset, note = preset_values(config), ""
        except ConfigError as exc:
            preset, note = None, f"the preset cannot be read, so changes are not marked: {exc.message}"
        self.post_message(ConfigLoaded(values=flat_values(config), preset=preset, note=note))

    @on(ConfigLoaded)
    def _config_loaded(self, message: ConfigLoaded) -> None:
        self.query_one(RunConfig).show(message.values, message.preset, message.note)

    # -- sampling -------------------------------------------------------------

    def _show_checkpoints(self) -> None:
        available = [name for name, file in CHECKPOINTS.items() if (self.run_dir / file).exists()]
        self.query_one(SampleConsole).show_checkpoints(not self.trainer_running, available)

    @on(SampleConsole.Submitted)
    def _sample(self, message: SampleConsole.Submitted) -> None:
        console = self.query_one(SampleConsole)
        sample_id = uuid.uuid4().hex[:8]
        fields = dict(id=sample_id, prompt=message.prompt, **message.settings.command_fields())
        if self.trainer_running:
            # The trainer answers between micro-steps; its pieces say whose weights decoded them.
            wait = self.state.boundary_wait
            console.begin(
                sample_id,
                message.prompt,
                "live model",
                waiting=f"waits for the next micro-step boundary, {wait}" if wait else "",
            )
            self.live_samples.add(sample_id)
            if not self._send("sample", **fields):
                console.fail(sample_id, "The trainer is not listening.", "it may have just finished; try again.")
            return
        self._show_checkpoints()
        checkpoint = console.checkpoint
        if checkpoint is None:
            console.begin(sample_id, message.prompt, "no checkpoint")
            console.fail(
                sample_id,
                "This run has no checkpoint to sample from.",
                "train until the first eval or press c while it trains.",
            )
            return
        console.begin(sample_id, message.prompt, f"{checkpoint}.pt")
        sampler = self._checkpoint_sampler(checkpoint)
        try:
            sampler.ask(**fields)
        except OSError:
            console.fail(sample_id, "The sampler is not running.", "see the log; submit again to restart it.")
            self.sampler = None

    def _cancel_sample(self) -> None:
        """esc while an answer streams: stop showing it now, and stop whoever generates it."""
        console = self.query_one(SampleConsole)
        sample_id = console.streaming_id
        console.cancel(sample_id)
        if sample_id in self.live_samples:
            if self.trainer_running:
                self._send("sample_cancel", id=sample_id)
        else:
            self._close_sampler()

    def _checkpoint_sampler(self, checkpoint: str) -> CheckpointSampler:
        """The sampler for `checkpoint`, started on first use (loading the model takes a moment)."""
        if self.sampler and (self.sampler.checkpoint != checkpoint or not self.sampler.running):
            self._close_sampler()
        if self.sampler is None:
            self.sampler = CheckpointSampler(self, self.run_dir, checkpoint)
            self.sampler.start()
        return self.sampler

    @on(SampleConsole.CheckpointChosen)
    def _checkpoint_chosen(self, message: SampleConsole.CheckpointChosen) -> None:
        if self.sampler and self.sampler.checkpoint != message.checkpoint:
            self._close_sampler()

    def _close_sampler(self) -> None:
        """A checkpoint sampler holds nothing worth keeping: the next prompt starts one again."""
        if self.sampler:
            self.sampler.close()
            self.sampler = None

    @on(SamplerExited)
    def _sampler_exited(self, message: SamplerExited) -> None:
        if message.sampler is not self.sampler:
            return  # one we closed on purpose
        self.sampler = None
        if message.exit_code != 0:
            last = next((line for line in reversed(message.stderr_tail) if line.strip()), "")
            self.query_one(SampleConsole).fail_pending(f"The sampler exited with code {message.exit_code}. {last}", "")
            self.query_one(RunDashboard).add_log([], message.stderr_tail)
