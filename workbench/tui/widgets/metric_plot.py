"""MetricPlot: one or more curves of a metric over training, drawn by plotext.

The plot keeps references to the run's `Series` and draws them when it is
rendered, downsampled to its own width, so adding points costs nothing here:
the screen calls `refresh_if_stale()` from a timer and the plot rebuilds only
when a series or a display option changed since the last draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from ...progress import format_duration
from ..run_state import Series

# TensorBoard's default smoothing weight.
EMA_WEIGHT = 0.6


@dataclass
class Curve:
    label: str
    series: Series
    color: str
    smooth: bool = True  # EMA applies (noisy per-step metrics, not lr or val loss)
    points: bool = False  # sparse data (val loss): draw markers, not a line


def ema(values: list[float], weight: float = EMA_WEIGHT) -> list[float]:
    """TensorBoard's debiased exponential moving average."""
    smoothed, last, n = [], 0.0, 0
    for v in values:
        n += 1
        last = last * weight + (1 - weight) * v
        smoothed.append(last / (1 - weight**n))
    return smoothed


def nice_ticks(lo: float, hi: float, count: int) -> list[float]:
    """About `count` round values (1, 2 or 5 times a power of ten) spanning [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def tick_label(value: float) -> str:
    """Ticks are round numbers: 0.002, 250, 31k, 1.5M."""
    for factor, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:.3g}"


def downsample(xs: list[float], ys: list[float], buckets: int) -> tuple[list[float], list[float]]:
    """At most `buckets` points: the mean of each run of consecutive points."""
    n = len(xs)
    if n <= buckets or buckets < 1:
        return xs, ys
    out_x, out_y = [], []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        out_x.append(sum(xs[lo:hi]) / (hi - lo))
        out_y.append(sum(ys[lo:hi]) / (hi - lo))
    return out_x, out_y


class MetricPlot(PlotextPlot):
    def __init__(self, title: str, curves: list[Curve] = (), *, id: str | None = None):
        """The title names the curves (a legend inside a small plot hides the data)."""
        super().__init__(id=id)
        self.border_title = title
        self.curves = list(curves)
        self.smoothing = True
        self.log_scale = False
        self.x_axis = "step"  # or "time" (elapsed seconds)
        self._drawn: tuple | None = None

    def set_curves(self, curves: list[Curve]) -> None:
        self.curves = curves
        self.refresh()

    def set_options(self, *, smoothing: bool, log_scale: bool, x_axis: str) -> None:
        self.smoothing, self.log_scale, self.x_axis = smoothing, log_scale, x_axis
        self.refresh_if_stale()

    def _fingerprint(self) -> tuple:
        return (self.smoothing, self.log_scale, self.x_axis, *(c.series.version for c in self.curves))

    def refresh_if_stale(self) -> None:
        if self._fingerprint() != self._drawn:
            self.refresh()

    def render(self) -> RenderResult:
        self._drawn = self._fingerprint()
        if self.size.width < 8 or self.size.height < 3:
            return Text("")
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        # Braille markers give two points per cell across.
        buckets = 2 * self.size.width
        all_x: list[float] = []
        all_y: list[float] = []
        for curve in self.curves:
            xs, ys = self._points(curve, buckets)
            if not xs:
                continue
            all_x += xs
            all_y += ys
            if curve.points:
                plt.scatter(xs, ys, marker="dot", color=curve.color)
            else:
                plt.plot(xs, ys, marker="braille", color=curve.color)
        if not all_x:
            return Text("waiting for data…", style="dim")
        plt.frame(False)
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        # Round tick values, few enough to stay readable in a small plot.
        x_ticks = nice_ticks(min(all_x), max(all_x), max(2, self.size.width // 10))
        plt.xticks(x_ticks, [format_duration(x) if self.x_axis == "time" else tick_label(x) for x in x_ticks])
        if self.log_scale:
            plt.yscale("log")
        else:
            y_ticks = nice_ticks(min(all_y), max(all_y), max(2, self.size.height // 2))
            plt.yticks(y_ticks, [tick_label(y) for y in y_ticks])
        return super().render()

    def _points(self, curve: Curve, buckets: int) -> tuple[list[float], list[float]]:
        s = curve.series
        xs: list[float] = list(s.steps if self.x_axis == "step" else s.times)
        ys = ema(s.values) if (self.smoothing and curve.smooth) else list(s.values)
        if self.log_scale:  # log of a non-positive value has no place on the axis
            kept = [(x, y) for x, y in zip(xs, ys) if y > 0]
            xs, ys = [p[0] for p in kept], [p[1] for p in kept]
        return downsample(xs, ys, buckets)
