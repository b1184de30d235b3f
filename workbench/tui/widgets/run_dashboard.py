"""RunDashboard: the Watch tab: plots, stats, crash report and log of one run."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical

from ..run_state import RunState
from .crash_panel import CrashPanel
from .metric_plot import Curve, MetricPlot
from .run_stats import RunStats
from .trainer_log import TrainerLog


class RunDashboard(Vertical):
    def __init__(self, state: RunState, *, id: str | None = None):
        super().__init__(id=id)
        self.state = state
        self._shown_version = -1

    def compose(self) -> ComposeResult:
        s = self.state.series
        yield CrashPanel(id="crash")
        with Horizontal(id="plots-and-stats"):
            with Grid(id="plots"):
                yield MetricPlot(
                    "loss (train, val •)",
                    [Curve("train", s["loss"], "cyan"), Curve("val", s["val_loss"], "orange", smooth=False, points=True)],
                    id="plot-loss",
                )
                yield MetricPlot("learning rate", [Curve("lr", s["lr"], "green", smooth=False)], id="plot-lr")
                yield MetricPlot("grad norm", [Curve("grad norm", s["grad_norm"], "magenta")], id="plot-grad-norm")
                yield MetricPlot("tokens/sec", [Curve("tok/s", s["tokens_per_sec"], "yellow")], id="plot-tokens-per-sec")
            yield RunStats(id="stats")
        yield TrainerLog(id="log")

    def set_plot_options(self, *, smoothing: bool, log_scale: bool, x_axis: str) -> None:
        for plot in self.query(MetricPlot):
            # Log scale is for loss-like curves; lr and tok/s read better linear.
            plot.set_options(smoothing=smoothing, log_scale=log_scale and plot.id in ("plot-loss", "plot-grad-norm"), x_axis=x_axis)

    def refresh_plots(self) -> None:
        """Redraw the plots whose data or options changed (the costly part of a frame)."""
        for plot in self.query(MetricPlot):
            plot.refresh_if_stale()

    def refresh_numbers(self, resumable: bool) -> None:
        """Stats and crash report: cheap, and a no-op when no event came in."""
        if self.state.version == self._shown_version:
            return
        self._shown_version = self.state.version
        self.query_one(RunStats).show(self.state)
        crash = self.query_one(CrashPanel)
        if crash.display != (self.state.crash is not None):
            crash.display = self.state.crash is not None
        if self.state.crash:
            crash.show(self.state.crash, resumable)
