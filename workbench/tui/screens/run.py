"""RunScreen: one run, live or finished: Watch (dashboard) and Talk (sampling).

The screen owns the orchestration: it connects to the trainer (a
`LaunchedTrainer` it started, or a `FollowedRun` read from the run directory),
feeds every event into the `RunState`, routes sample answers to the console,
and turns key presses into commands on the run's control channel. Widgets only
render: the numbers redraw from the state once a second and the plots as
often as a CPU budget allows (see FramePacer), however fast events arrive.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from ...control import RunNotLive
from ...launcher import trainer_command
from ...runs import BEST_CKPT, LAST_CKPT
from ..checkpoint_sampler import CheckpointSampler
from ..frame_pacer import FramePacer
from ..messages import OutputArrived, SamplerExited, TrainerExited, TrainerLiveness
from ..run_state import RunState
from ..trainer_link import FollowedRun, LaunchedTrainer
from ..widgets.run_dashboard import RunDashboard
from ..widgets.run_header import RunHeader
from ..widgets.sample_console import SampleConsole
from ..widgets.trainer_log import TrainerLog

NUMBERS_S = 1.0  # stats and header: cheap text, redrawn once a second
PLOTS_CHECK_S = 0.5  # plots: redrawn when the CPU budget allows; this is how often we ask


class RunScreen(Screen):
    BINDINGS = [
        Binding("p", "pause", "Pause", tooltip="Pause training (the trainer waits between steps)", id="run.pause"),
        Binding("p", "resume", "Resume", tooltip="Resume training", id="run.resume"),
        Binding("s", "stop", "Stop", tooltip="Stop training gracefully: checkpoint, then finish", id="run.stop"),
        Binding("c", "checkpoint", "Checkpoint", tooltip="Save a checkpoint now", id="run.checkpoint"),
        Binding("R", "resume_run", "Resume run", tooltip="Resume the crashed run from its last checkpoint", id="run.resume_run"),
        Binding("t", "show_tab('talk')", "Talk", tooltip="Sampling console: prompt the model", id="run.talk"),
        Binding("w", "show_tab('watch')", "Watch", tooltip="Dashboard: plots, stats, log", id="run.watch"),
        Binding("e", "toggle_smoothing", "EMA", tooltip="Toggle EMA smoothing of the curves", id="run.smoothing"),
        Binding("g", "toggle_log_scale", "Log y", tooltip="Toggle a log-scale y axis for loss and grad norm", id="run.log_scale"),
        Binding("x", "toggle_x_axis", "X axis", tooltip="Toggle the x axis between step and elapsed time", id="run.x_axis"),
        Binding("escape", "back", "Back", tooltip="Back to the previous screen (the run keeps going)", show=False, id="run.back"),
    ]

    def __init__(self, run_dir: Path, argv: list[str] | None = None):
        """With `argv`, start that trainer; without, follow the run directory."""
        super().__init__()
        self.run_dir = Path(run_dir)
        self.state = RunState(self.run_dir)
        self.link: LaunchedTrainer | FollowedRun = LaunchedTrainer(self, argv, self.run_dir) if argv else FollowedRun(self, self.run_dir)
        self.sampler: CheckpointSampler | None = None
        self.smoothing, self.log_scale, self.x_axis = True, False, "step"
        self.plot_pacer = FramePacer()

    def compose(self) -> ComposeResult:
        yield RunHeader(id="run-header")
        with TabbedContent(initial="watch"):
            with TabPane("Watch", id="watch"):
                yield RunDashboard(self.state, id="dashboard")
            with TabPane("Talk", id="talk"):
                yield SampleConsole(id="console")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(SampleConsole).show_checkpoint_choice(not self.link.owns_process)
        self.link.start()
        self.set_interval(NUMBERS_S, self._refresh_numbers)
        self.set_interval(PLOTS_CHECK_S, self._maybe_refresh_plots)
        self.redraw()

    def on_unmount(self) -> None:
        if self.sampler:
            self.sampler.close()

    # -- what the run is doing -----------------------------------------------

    @property
    def trainer_running(self) -> bool:
        """A trainer process is there to take commands."""
        return self.link.running

    @property
    def source(self) -> str:
        if self.link.owns_process:
            return "launched here"
        return "attached, live" if self.link.running else "replay from run dir"

    def _refresh_numbers(self) -> None:
        self.query_one(RunHeader).show(self.state, self.source)
        self.query_one(RunDashboard).refresh_numbers(resumable=self.resumable)

    def _maybe_refresh_plots(self) -> None:
        if self.plot_pacer.frame_due():
            self.query_one(RunDashboard).refresh_plots()

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
        log = self.query_one(TrainerLog)
        status = self.state.status
        for event in events:
            if not self._route_sample(console, event, from_sampler=False):
                self.state.apply(event)
        log.add_events(events)
        log.add_stderr(stderr)
        self._detect_attached_crash()
        if self.state.status != status:  # the badge and the footer's controls follow at once
            self.refresh_bindings()
            self._refresh_numbers()

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
        self._run_changed()
        self.app.run_ended(self)

    @on(TrainerLiveness)
    def _liveness(self, message: TrainerLiveness) -> None:
        self._detect_attached_crash()
        self._run_changed()

    def _detect_attached_crash(self) -> None:
        """A run we only follow has died if nobody listens and it never said it finished."""
        link, state = self.link, self.state
        if isinstance(link, FollowedRun) and link.live is False and state.started and not state.finished and not state.crash:
            state.mark_crashed(None, [])

    def _run_changed(self) -> None:
        self.query_one(SampleConsole).show_checkpoint_choice(not self.trainer_running)
        self.refresh_bindings()
        self.redraw()

    # -- controls -----------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        running = self.trainer_running
        paused = self.state.status == "paused"
        if action == "pause":
            return running and not paused
        if action == "resume":
            return running and paused
        if action in ("stop", "checkpoint"):
            if not running:
                return False
            return self.state.status != "stopping" or None  # greyed out while it winds down
        if action == "resume_run":
            return self.resumable
        if action == "show_tab":  # offer the other tab only
            return parameters[0] != self.query_one(TabbedContent).active
        return True

    def _send(self, cmd: str, **fields) -> bool:
        try:
            self.link.send(cmd, **fields)
        except (RunNotLive, OSError) as exc:
            self.notify(f"Could not send {cmd}: {exc}", severity="error")
            return False
        return True

    def action_pause(self) -> None:
        self._send("pause")

    def action_resume(self) -> None:
        self._send("resume")

    def action_stop(self) -> None:
        if self._send("stop"):
            self.notify("Stopping: the trainer checkpoints, then finishes.")

    def action_checkpoint(self) -> None:
        self._send("checkpoint")

    def stop_for_quit(self) -> None:
        """The app is quitting and the user chose to stop this run."""
        if self.trainer_running:
            self._send("stop")

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
        self.query_one("#prompt" if tab == "talk" else "#log").focus()

    def action_toggle_smoothing(self) -> None:
        self.smoothing = not self.smoothing
        self._apply_plot_options(f"EMA smoothing {'on' if self.smoothing else 'off'}")

    def action_toggle_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self._apply_plot_options(f"log scale {'on' if self.log_scale else 'off'}")

    def action_toggle_x_axis(self) -> None:
        self.x_axis = "time" if self.x_axis == "step" else "step"
        self._apply_plot_options(f"x axis: {'elapsed seconds' if self.x_axis == 'time' else 'step'}")

    def _apply_plot_options(self, what: str) -> None:
        self.query_one(RunDashboard).set_plot_options(smoothing=self.smoothing, log_scale=self.log_scale, x_axis=self.x_axis)
        self.notify(what, timeout=1.5)

    def action_back(self) -> None:
        if self.query_one(TabbedContent).active == "talk":
            self.action_show_tab("watch")
        elif len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    # -- sampling -------------------------------------------------------------

    @on(SampleConsole.Submitted)
    def _sample(self, message: SampleConsole.Submitted) -> None:
        console = self.query_one(SampleConsole)
        sample_id = uuid.uuid4().hex[:8]
        fields = dict(id=sample_id, prompt=message.prompt, **message.settings.command_fields())
        if self.trainer_running:
            console.begin(sample_id, message.prompt, f"live model, step {self.state.step}")
            if not self._send("sample", **fields):
                console.fail(sample_id, "The trainer is not listening.", "it may have just finished; try again.")
            return
        checkpoint = console.checkpoint
        console.begin(sample_id, message.prompt, f"{checkpoint}.pt")
        if not (self.run_dir / (BEST_CKPT if checkpoint == "best" else LAST_CKPT)).exists():
            console.fail(sample_id, f"This run has no {checkpoint}.pt checkpoint.", "train longer, or pick the other checkpoint.")
            return
        sampler = self._checkpoint_sampler(checkpoint)
        try:
            sampler.ask(**fields)
        except OSError:
            console.fail(sample_id, "The sampler is not running.", "see the log; submit again to restart it.")
            self.sampler = None

    def _checkpoint_sampler(self, checkpoint: str) -> CheckpointSampler:
        """The sampler for `checkpoint`, started on first use (loading the model takes a moment)."""
        if self.sampler and (self.sampler.checkpoint != checkpoint or not self.sampler.running):
            self.sampler.close()
            self.sampler = None
        if self.sampler is None:
            self.sampler = CheckpointSampler(self, self.run_dir, checkpoint)
            self.sampler.start()
        return self.sampler

    @on(SampleConsole.CheckpointChosen)
    def _checkpoint_chosen(self, message: SampleConsole.CheckpointChosen) -> None:
        if self.sampler and self.sampler.checkpoint != message.checkpoint:
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
            self.query_one(TrainerLog).add_stderr(message.stderr_tail)
