"""What every screen of the app shares.

- `WorkbenchScreen`: a worker that fails (a corrupt file, an unreadable run
  dir) is reported on screen through one path and never takes the app down;
  the workers are started with `exit_on_error=False` for that.
- `PlotScreen`: the plot controls (EMA, log y, x axis, zoom), declared once.
  They change the app's one `PlotOptions`, and every plotting screen watches
  it, so a toggle holds wherever you go. The plot titles show their state, so
  the keys stay out of a crowded footer (`?` lists them).
"""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from ..plot_options import PlotOptions
from ..widgets.metric_plot import MetricPlot


class WorkbenchScreen(Screen):
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.app.report_error(f"{event.worker.name or 'a background task'} failed", event.worker.error)


class PlotScreen(WorkbenchScreen):
    BINDINGS = [
        Binding(
            "e",
            "toggle_plot('smoothing')",
            "EMA",
            tooltip="Toggle EMA smoothing of the noisy curves",
            show=False,
            id="plots.smoothing",
        ),
        Binding(
            "g",
            "toggle_plot('log_scale')",
            "Log y",
            tooltip="Toggle a log-scale y axis for loss-like curves",
            show=False,
            id="plots.log_scale",
        ),
        Binding(
            "x",
            "toggle_plot('x_axis')",
            "X axis",
            tooltip="Toggle the x axis between step and elapsed time",
            show=False,
            id="plots.x_axis",
        ),
        Binding(
            "z",
            "zoom",
            "Zoom",
            tooltip="Zoom to the last steps (a quarter, a sixteenth), then the whole run again",
            show=False,
            id="plots.zoom",
        ),
    ]

    def on_mount(self) -> None:
        self.watch(self.app, "plot_options", self.show_plot_options)

    def show_plot_options(self, options: PlotOptions) -> None:
        for plot in self.query(MetricPlot):
            plot.set_options(options)

    def action_toggle_plot(self, name: str) -> None:
        self.app.plot_options = self.app.plot_options.toggled(name)

    def action_zoom(self) -> None:
        last_steps = [c.series.steps[-1] for plot in self.query(MetricPlot) for c in plot.curves if c.series.steps]
        options = self.app.plot_options.zoomed(max(last_steps, default=0))
        if options == self.app.plot_options:
            self.notify("Too few steps to zoom into.", timeout=2)
        self.app.plot_options = options
