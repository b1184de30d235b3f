"""CompareScreen: several runs' loss curves overlaid, train and val side by side."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from ...runs import headline_metric, read_events
from .. import units
from ..run_state import RunState
from ..widgets.metric_plot import Curve, MetricPlot

COLORS = ("cyan", "orange", "green", "magenta", "yellow", "red", "blue", "white")


class RunsLoaded(Message):
    def __init__(self, states: list[RunState]):
        super().__init__()
        self.states = states


class CompareScreen(Screen):
    BINDINGS = [
        Binding("e", "toggle_smoothing", "EMA", tooltip="Toggle EMA smoothing of the curves", id="compare.smoothing"),
        Binding("g", "toggle_log_scale", "Log y", tooltip="Toggle a log-scale y axis", id="compare.log_scale"),
        Binding("x", "toggle_x_axis", "X axis", tooltip="Toggle the x axis between step and elapsed time", id="compare.x_axis"),
        Binding("r", "reload", "Reload", tooltip="Read the runs' events again", id="compare.reload"),
        Binding("escape", "back", "Back", id="compare.back"),
    ]

    def __init__(self, paths: list[Path]):
        super().__init__()
        self.paths = paths
        self.smoothing, self.log_scale, self.x_axis = True, False, "step"

    def compose(self) -> ComposeResult:
        with Horizontal(id="compare-plots"):
            yield MetricPlot("train loss", id="compare-train")
            yield MetricPlot("val loss", id="compare-val")
        yield Static(id="compare-legend")
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()

    @work(thread=True, exclusive=True)
    def action_reload(self) -> None:
        states = []
        for path in self.paths:
            state = RunState(path)
            for event in read_events(path):
                state.apply(event)
            states.append(state)
        self.post_message(RunsLoaded(states))

    @on(RunsLoaded)
    def _loaded(self, message: RunsLoaded) -> None:
        states = message.states
        colors = [COLORS[i % len(COLORS)] for i in range(len(states))]
        self.query_one("#compare-train", MetricPlot).set_curves(
            [Curve(s.name, s.series["loss"], c) for s, c in zip(states, colors)]
        )
        self.query_one("#compare-val", MetricPlot).set_curves(
            [Curve(s.name, s.series["val_loss"], c, smooth=False) for s, c in zip(states, colors)]
        )
        legend = Table.grid(padding=(0, 2))
        for _ in range(5):
            legend.add_column(no_wrap=True)
        legend.add_row(*(Text(h, style="dim") for h in ("run", "status", "step", "best val", "metric")))
        for s, color in zip(states, colors):
            outcome = s.finished["reason"] if s.finished else s.status  # completed / stopped, not just "finished"
            legend.add_row(Text(f"■ {s.name}", style=color), outcome, f"{s.step:,}", units.number(s.best_val_loss), headline_metric(s.metrics))
        self.query_one("#compare-legend", Static).update(legend)

    def _apply(self) -> None:
        for plot in self.query(MetricPlot):
            plot.set_options(smoothing=self.smoothing, log_scale=self.log_scale, x_axis=self.x_axis)

    def action_toggle_smoothing(self) -> None:
        self.smoothing = not self.smoothing
        self._apply()

    def action_toggle_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self._apply()

    def action_toggle_x_axis(self) -> None:
        self.x_axis = "time" if self.x_axis == "step" else "step"
        self._apply()

    def action_back(self) -> None:
        self.app.pop_screen()
