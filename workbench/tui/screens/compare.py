"""CompareScreen: any metric of several runs overlaid, and the config keys that differ.

Each run has a colour and a marker of its own (see curve_styles), used alike
by the curves, the legend and the config table, so runs stay apart without
colour too. `n` steps through the metrics: the losses, lr, grad norm,
tokens/sec and the task's eval metrics (addition: accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from ... import metrics, units
from ...control import is_live
from ...run_files import CONFIG_FILE, read_json
from ...run_state import RunState, Series
from ...runs import headline_metric, read_events
from ..config_values import differing_keys, flat_values
from ..curve_styles import run_style
from ..widgets.metric_plot import Curve, MetricPlot
from .workbench_screen import PlotScreen


@dataclass
class RunsLoaded(Message):
    states: list[RunState]
    configs: list[dict[str, str]]


def series_of(state: RunState, metric: metrics.Metric) -> Series:
    return state.series.get(metric.key) or state.task_series.get(metric.key) or Series()


class CompareScreen(PlotScreen):
    HELP_TITLE = "compare screen"
    BINDINGS = [
        Binding(
            "n",
            "next_metric(1)",
            "Next metric",
            tooltip="Overlay the next metric: losses, lr, grad norm, tok/s, task metrics",
            id="compare.next_metric",
        ),
        Binding(
            "N",
            "next_metric(-1)",
            "Previous metric",
            tooltip="Overlay the previous metric",
            show=False,
            id="compare.previous_metric",
        ),
        Binding("r", "reload", "Reload", tooltip="Read the runs' events again", id="compare.reload"),
        Binding("escape", "back", "Back", tooltip="Back to the runs", id="compare.back"),
    ]

    def __init__(self, paths: list[Path]):
        super().__init__()
        self.paths = paths
        self.states: list[RunState] = []
        self.metrics = list(metrics.plotted())
        self.metric_index = 0

    def compose(self) -> ComposeResult:
        yield MetricPlot("train loss", id="compare-plot")
        yield Static(id="compare-legend")
        yield DataTable(id="compare-diff", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#compare-diff").border_title = "config: the keys that differ"
        self.action_reload()

    @work(thread=True, exclusive=True, name="reading the runs to compare", exit_on_error=False)
    def action_reload(self) -> None:
        states, configs = [], []
        for path in self.paths:
            state = RunState(path)
            for event in read_events(path):
                state.apply(event)
            if state.started and not state.finished and not is_live(path):
                state.mark_crashed(None, [])  # died without a word, as the runs table says
            config = state.config or read_json(path / CONFIG_FILE)
            states.append(state)
            configs.append({"preset": config.get("preset", "?"), **flat_values(config)})
        self.post_message(RunsLoaded(states, configs))

    @on(RunsLoaded)
    def _loaded(self, message: RunsLoaded) -> None:
        self.states = message.states
        task_metrics = dict.fromkeys(name for s in self.states for name in s.task_series)
        current = self.metrics[self.metric_index].key
        task = [
            metrics.Metric(name, metrics.task_label(name), "eval", smooth=False, log_scale=False)
            for name in task_metrics
        ]
        self.metrics = [*metrics.plotted(), *task]  # the curves every run has, then the runs' task metrics
        self.metric_index = next((i for i, m in enumerate(self.metrics) if m.key == current), 0)
        self._show_metric()
        self._show_legend()
        self._show_diff(message.configs)

    def _show_metric(self) -> None:
        metric = self.metrics[self.metric_index]
        plot = self.query_one("#compare-plot", MetricPlot)
        plot.metric = f"{metric.label} ({self.metric_index + 1}/{len(self.metrics)}, n: next)"
        plot.loggable = metric.log_scale
        plot.set_curves(
            [Curve(s.name, series_of(s, metric), run_style(i), smooth=metric.smooth) for i, s in enumerate(self.states)]
        )

    def _show_legend(self) -> None:
        legend = Table.grid(padding=(0, 2))
        for _ in range(5):
            legend.add_column(no_wrap=True)
        legend.add_row(*(Text(h, style="dim") for h in ("run", "status", "step", "best val", "metric")))
        for i, s in enumerate(self.states):
            style = run_style(i)
            outcome = s.finished["reason"] if s.finished else s.status  # completed / stopped, not just "finished"
            legend.add_row(
                Text(f"{style.symbol} {i + 1} {s.name}", style=style.rich_color),
                outcome,
                f"{s.step:,}",
                units.number(s.best_val_loss),
                headline_metric(s.task_scores),
            )
        self.query_one("#compare-legend", Static).update(legend)

    def _show_diff(self, configs: list[dict[str, str]]) -> None:
        table = self.query_one("#compare-diff", DataTable)
        table.clear(columns=True)
        table.add_column("key")
        for i in range(len(configs)):
            style = run_style(i)
            table.add_column(Text(f"{style.symbol} {i + 1}", style=style.rich_color))
        keys = differing_keys(configs)
        for key in keys:
            table.add_row(key, *(values.get(key, units.DASH) for values in configs))
        if not keys:
            table.add_row(Text("the same config", style="dim"), *("" for _ in configs))

    def action_next_metric(self, direction: int) -> None:
        self.metric_index = (self.metric_index + direction) % len(self.metrics)
        self._show_metric()

    def action_back(self) -> None:
        self.app.pop_screen()
