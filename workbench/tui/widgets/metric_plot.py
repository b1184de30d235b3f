"""MetricPlot: one or more curves of a metric over training, drawn by plotext.

The plot keeps references to the run's `Series` and draws them when it is
rendered, downsampled to its own width, so adding points costs nothing here:
the screen calls `refresh_if_stale()` from a timer and the plot rebuilds only
when a series, a display option or the cursor changed since the last draw.

A plot takes focus (tab, or a click): the arrow keys then move a value
cursor along it, and the title reads the step, every curve's value there and
the elapsed time; escape puts the cursor away.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from rich.text import Text
from textual.actions import SkipAction
from textual.app import RenderResult
from textual.binding import Binding
from textual_plotext import PlotextPlot

from ... import units
from ...run_state import Series
from ..curve_styles import CurveStyle
from ..plot_math import downsample, ema, log_ticks, nice_ticks, spread, tick_labels, time_ticks
from ..plot_options import PlotOptions

WAITING = "waiting for data…"


def packed(parts: list[str], separator: str, width: int) -> list[str]:
    """`parts` joined by `separator` into lines of at most `width` (a part longer than that keeps a line)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + len(separator) + len(part) <= width:
            lines[-1] += separator + part
        else:
            lines.append(part)
    return lines


def one_line(parts: list[str], width: int) -> str:
    """`parts` on one line of at most `width`: spaced, else tight, else cut with an ellipsis."""
    for separator in (" · ", "·"):
        line = separator.join(parts)
        if len(line) <= width:
            return line
    return line[: max(0, width - 1)] + "…"


@dataclass
class Curve:
    label: str
    series: Series
    style: CurveStyle
    smooth: bool = True  # EMA applies (noisy per-step metrics, not lr or val loss)
    points: bool = False  # sparse data (val loss): draw markers, not a line


@dataclass
class CurveView:
    """One curve as drawn: the points in the window, smoothed and log-filtered, not yet downsampled."""

    curve: Curve
    steps: list[int]
    xs: list[float]
    ys: list[float]
    raw: list[float]


class MetricPlot(PlotextPlot, can_focus=True):
    HELP_TITLE = "a plot (tab or a click focuses one)"
    BINDINGS = [
        Binding(
            "left",
            "move_cursor(-1)",
            "Cursor left",
            show=False,
            tooltip="Move the value cursor back",
            id="plot.cursor_left",
        ),
        Binding(
            "right",
            "move_cursor(1)",
            "Cursor right",
            show=False,
            tooltip="Move the value cursor on",
            id="plot.cursor_right",
        ),
        Binding(
            "escape",
            "hide_cursor",
            "Hide cursor",
            show=False,
            tooltip="Put the value cursor away",
            id="plot.hide_cursor",
        ),
    ]

    def __init__(self, metric: str, curves: list[Curve] = (), *, loggable: bool = True, id: str | None = None):
        """`metric` names the curves in the title (a legend inside a small plot hides the data);
        `loggable`: the log-y option applies (loss-like curves; lr and tok/s read better linear)."""
        super().__init__(id=id)
        self.metric = metric
        self.curves = list(curves)
        self.loggable = loggable
        self.options = PlotOptions()
        self.cursor_step: int | None = None
        self.has_data = False  # the last frame drew a curve (not "waiting for data")
        self.empty_text = WAITING  # what the plot says while it has no points (the dashboard sets it)
        self.heading = metric  # the title with the options or the cursor's readout
        self.note = ""  # the part of the heading that the border title cannot hold
        self._drawn: tuple | None = None
        self._update_title()

    def set_curves(self, curves: list[Curve]) -> None:
        self.curves = curves
        self._update_title()
        self.refresh()

    def set_options(self, options: PlotOptions) -> None:
        self.options = options
        self._update_title()
        self.refresh_if_stale()

    def _fingerprint(self) -> tuple:
        return (
            self.options,
            self.cursor_step,
            self.app.no_color,
            self.empty_text,
            *(c.series.version for c in self.curves),
        )

    @property
    def stale(self) -> bool:
        return self._fingerprint() != self._drawn

    def refresh_if_stale(self) -> None:
        if self.stale:
            if self.cursor_step is not None:
                self._update_title()  # the values under the cursor may have changed
            self.refresh()

    # -- what is drawn -----------------------------------------------------

    def views(self) -> list[CurveView]:
        """Every curve with points in the window."""
        o = self.options
        last_steps = [c.series.steps[-1] for c in self.curves if c.series.steps]
        first_step = max(last_steps) - o.window if (o.window and last_steps) else None
        log = o.log_scale and self.loggable
        views = []
        for curve in self.curves:
            s = curve.series
            # Smooth the whole series, then cut the window: zooming must not restart the average.
            ys = ema(s.values) if (o.smoothing and curve.smooth) else s.values
            xs = s.steps if o.x_axis == "step" else s.times
            keep = [
                i
                for i in range(len(ys))
                if (first_step is None or s.steps[i] > first_step)
                and (not log or ys[i] > 0)  # log has no place for <= 0
            ]
            if keep:
                views.append(
                    CurveView(
                        curve,
                        [s.steps[i] for i in keep],
                        [xs[i] for i in keep],
                        [ys[i] for i in keep],
                        [s.values[i] for i in keep],
                    )
                )
        return views

    def render(self) -> RenderResult:
        self._drawn = self._fingerprint()
        if self.size.width < 8 or self.size.height < 3:
            return Text("")
        views = self.views()
        self.has_data = bool(views)
        if not views:
            return Text(self.empty_text, style="dim")
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        no_color = self.app.no_color
        # Braille markers give two points per cell across.
        buckets = 2 * self.size.width
        all_x: list[float] = []
        all_y: list[float] = []
        for view in views:
            xs, ys = downsample(view.xs, view.ys, buckets)
            all_x += xs
            all_y += ys
            style = view.curve.style
            if view.curve.points:
                plt.scatter(xs, ys, marker=style.marker, color=style.plot_color(no_color))
            else:
                plt.plot(xs, ys, marker=style.marker, color=style.plot_color(no_color))
        cursor = self._cursor_point(views[0])
        if cursor is not None:
            plt.vline(views[0].xs[cursor], "default")
        plt.frame(False)
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        # Round tick values, at least two on each axis, few enough to stay readable in a small plot.
        x_lo, x_hi = spread(min(all_x), max(all_x))
        plt.xlim(x_lo, x_hi)
        x_count = max(2, self.size.width // 10)
        if self.options.x_axis == "time":
            x_ticks = time_ticks(x_lo, x_hi, x_count)
            plt.xticks(x_ticks, [units.duration(x) for x in x_ticks])
        else:
            x_ticks = nice_ticks(x_lo, x_hi, x_count, integer=True)
            plt.xticks(x_ticks, tick_labels(x_ticks))
        log = self.options.log_scale and self.loggable
        y_lo, y_hi = spread(min(all_y), max(all_y), log)
        y_count = max(2, self.size.height // 3)
        if log:
            # plotext takes the log of the data and the ticks, but not of the limits.
            plt.yscale("log")
            plt.ylim(math.log10(y_lo), math.log10(y_hi))
            y_ticks = log_ticks(y_lo, y_hi, y_count)
        else:
            plt.ylim(y_lo, y_hi)
            y_ticks = nice_ticks(y_lo, y_hi, y_count)
        plt.yticks(y_ticks, tick_labels(y_ticks))
        note_rows = self.note.count("\n") + 1 if self.note else 0
        if not note_rows or self.size.height - note_rows < 3:
            return super().render()
        # PlotextPlot.render, under the note.
        plt.plotsize(self.size.width, self.size.height - note_rows)
        plt._set_size(self.size.width, self.size.height - note_rows)
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        style = "bold" if self.cursor_step is not None else "dim"
        return Text.assemble((self.note, style), "\n", Text.from_ansi(plt.build()))

    # -- the value cursor -----------------------------------------------------

    def _cursor_point(self, view: CurveView) -> int | None:
        """The index in `view` at or before the cursor step (None: no cursor, or before the view)."""
        if self.cursor_step is None:
            return None
        index = bisect.bisect_right(view.steps, self.cursor_step) - 1
        return index if index >= 0 else None

    def action_move_cursor(self, direction: int) -> None:
        views = self.views()
        if not views:
            return
        primary = views[0]
        here = self._cursor_point(primary)
        if self.cursor_step is None or here is None:
            index = len(primary.steps) - 1
        else:
            # One press moves one column of the plot, however many points it holds.
            stride = max(1, len(primary.steps) // max(1, self.size.width - 6))
            index = min(max(here + direction * stride, 0), len(primary.steps) - 1)
        self.cursor_step = primary.steps[index]
        self._update_title()
        self.refresh()

    def action_hide_cursor(self) -> None:
        if self.cursor_step is None:
            raise SkipAction()  # escape means "back" to the screen
        self.cursor_step = None
        self._update_title()
        self.refresh()

    def readout(self) -> str:
        """What the cursor reads: step, each curve's value there, elapsed time."""
        views = self.views() if self.cursor_step is not None else []
        if not views or self._cursor_point(views[0]) is None:
            return ""
        primary, index = views[0], self._cursor_point(views[0])
        parts = [f"step {primary.steps[index]:,}"]
        for view in views:
            i = self._cursor_point(view)
            if i is None:
                continue
            value = units.number(view.ys[i])
            if view.ys[i] != view.raw[i]:
                value += f" (raw {units.number(view.raw[i])})"
            label = f"{view.curve.style.symbol} " if len(views) > 1 else ""
            parts.append(label + value)
        elapsed = primary.curve.series.times[primary.curve.series.steps.index(primary.steps[index])]
        parts.append(units.duration(elapsed))
        return " · ".join(parts)

    def _update_title(self) -> None:
        """The heading goes in the border title; what a narrow plot's title cannot hold goes on
        lines of its own above the curves, so the cursor's values are never cut. The plot
        options take one line at most (tighter, then cut with an ellipsis): a small plot keeps its
        rows for the curves."""
        readout = self.readout()
        if readout:
            detail = f"▸ {readout}"
        else:
            detail = self.options.describe(smoothable=any(c.smooth for c in self.curves), loggable=self.loggable)
        separator = " " if readout else " · "
        self.heading = f"{self.metric}{separator}{detail}" if detail else self.metric
        # The border keeps a corner on each side of its title.
        fits = not self.size.width or len(self.heading) <= self.size.width - 2
        self.border_title = self.heading if fits else self.metric
        if fits:
            note = ""
        elif readout:
            note = "\n".join(packed(detail.split(" · "), " · ", self.size.width))
        else:
            note = one_line(detail.split(" · "), self.size.width)
        if note != self.note:
            self.note = note
            self.refresh()

    def on_resize(self) -> None:
        self._update_title()
