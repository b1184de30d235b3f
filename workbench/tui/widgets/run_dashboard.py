"""RunDashboard: the Watch tab: plots, stats, system pane, crash report and log of one run.

On a small terminal the stats and the log fold into one line each, so the
plots keep the room; the run screen's keys unfold them (`i`, `o`) and show
the system pane (`u`). The classes on the dashboard say which is which.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Static

from ... import metrics
from ...run_state import RunState
from ..curve_styles import metric_style
from .crash_panel import CrashPanel
from .metric_plot import WAITING, Curve, MetricPlot
from .run_stats import RunStats, RunStatsLine
from .system_pane import SystemPane
from .trainer_log import TrainerLog

# Below this size the stats and the log start folded into one line each.
ROOMY_WIDTH, ROOMY_HEIGHT = 100, 32


class RunDashboard(Vertical):
    def __init__(self, state: RunState, *, id: str | None = None):
        super().__init__(id=id)
        self.state = state
        self._shown: tuple | None = None  # (state version, stats folded, system shown) last drawn
        self._log_line_shown: Text | None = None  # the log line last drawn in the folded log
        self._plots: list[MetricPlot] = []

    def compose(self) -> ComposeResult:
        yield CrashPanel(id="crash")
        yield RunStatsLine(id="stats-line")
        with Horizontal(id="plots-and-stats"):
            with Grid(id="plots"):
                for plot in metrics.PLOTS:
                    yield self._plot(plot)
            yield RunStats(id="stats")
            yield SystemPane(id="system")
        yield TrainerLog(id="log")
        yield Static(id="log-line")

    def _plot(self, plot: str) -> MetricPlot:
        """One plot of metrics.PLOTS: its metrics' curves; several in one plot say which is which in the title."""
        shown = metrics.in_plot(plot)
        curves = [
            Curve(m.short, self.state.series[m.key], metric_style(m), smooth=m.smooth, points=m.event == "eval")
            for m in shown
        ]
        title = shown[0].label
        if len(shown) > 1:
            title = f"{metrics.PLOTS[plot]} ({', '.join(f'{c.label} {c.style.symbol}' for c in curves)})"
        loggable = all(m.log_scale for m in shown)
        return MetricPlot(title, curves, loggable=loggable, id=f"plot-{plot.replace('_', '-')}")

    @property
    def plots(self) -> list[MetricPlot]:
        """Asked for on every event batch and tick: found once, not by a DOM query each time."""
        if not self._plots:
            self._plots = list(self.query(MetricPlot))
        return self._plots

    # -- layout ------------------------------------------------------------

    def fit(self, width: int, height: int) -> None:
        """Fold stats and log into lines when the terminal is small."""
        small = width < ROOMY_WIDTH or height < ROOMY_HEIGHT
        self.set_class(small, "-stats-line")
        self.set_class(small, "-log-line")
        self._refresh_lines()

    def toggle(self, part: str) -> None:
        """`part`: stats-line, log-line (fold / unfold) or system (show / hide); the screen redraws the numbers."""
        self.toggle_class(f"-{part}")
        self._refresh_lines()

    def is_showing(self, part: str) -> bool:
        return self.has_class(f"-{part}")

    # -- content ------------------------------------------------------------

    @property
    def plots_waiting(self) -> bool:
        """A plot still says "waiting for data" although its data is there (replay, first steps)."""
        return any(plot.stale and not plot.has_data and any(c.series.steps for c in plot.curves) for plot in self.plots)

    def refresh_plots(self) -> None:
        """Redraw the plots whose data or options changed (the costly part of a frame)."""
        for plot in self.plots:
            plot.refresh_if_stale()

    def add_log(self, events: list[dict], stderr: list[str]) -> None:
        log = self.query_one(TrainerLog)
        log.add_events(events)
        log.add_stderr(stderr)
        self._refresh_lines()

    def add_note(self, line: str) -> None:
        """A line of the app's own in the log: what happened to the run that no event says."""
        self.query_one(TrainerLog).add_line(Text(line, style="bold red"))
        self._refresh_lines()

    def _refresh_lines(self) -> None:
        if self.is_showing("log-line"):
            last = self.query_one(TrainerLog).last_line
            if last is self._log_line_shown:
                return  # most batches are steps, which add no line: no repaint
            self._log_line_shown = last
            self.query_one("#log-line", Static).update(
                Text.assemble(("log › ", "dim"), last, (" (o: whole log)", "dim")), layout=False
            )

    def refresh_numbers(self, resumable: bool, now: float | None = None) -> None:
        """Stats, system pane and crash report: cheap, and a no-op when nothing changed.
        `now`: the wall-clock time while the run is live, so elapsed and ETA tick between events."""
        # what is on screen: a fold or an unfold (toggle, resize) needs a redraw as much as a new event
        shown = (
            self.state.version,
            self.is_showing("stats-line"),
            self.is_showing("system"),
            self.size.width,
            None if now is None else int(now),
        )
        if shown == self._shown:
            return
        self._shown = shown
        if self.is_showing("stats-line"):
            self.query_one(RunStatsLine).show(self.state, now)
        else:
            self.query_one(RunStats).show(self.state, now)
        if self.is_showing("system"):
            self.query_one(SystemPane).show(self.state)
        if self.state.is_over:
            empty = "no steps were logged before the run ended"
        else:  # a long first step shows how far it got
            empty = f"{self.state.micro_step}…" if self.state.micro_step else WAITING
        for plot in self.plots:
            plot.empty_text = empty
        crash = self.query_one(CrashPanel)
        if crash.display != (self.state.crash is not None):
            crash.display = self.state.crash is not None
        if self.state.crash:
            crash.show(self.state.crash, resumable)
