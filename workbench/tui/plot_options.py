"""PlotOptions: how every plot in the app is drawn right now.

One value, held by the app (`GPTBenchApp.plot_options`, a reactive) and
watched by the run and compare screens, so a toggle made on one screen holds
on all of them. Plain Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .plot_math import EMA_WEIGHT


@dataclass(frozen=True)
class PlotOptions:
    smoothing: bool = True  # EMA over the noisy per-step curves
    log_scale: bool = False  # log y for loss-like curves
    x_axis: str = "step"  # or "time": elapsed seconds
    window: int = 0  # 0: the whole run; N: the last N steps

    def toggled(self, name: str) -> PlotOptions:
        if name == "x_axis":
            return replace(self, x_axis="time" if self.x_axis == "step" else "step")
        return replace(self, **{name: not getattr(self, name)})

    def zoomed(self, last_step: int) -> PlotOptions:
        """The next zoom: the whole run, the last quarter, the last sixteenth (round numbers), again.
        The choices move as the run grows, so the next one is the next narrower than the window now:
        `z` never jumps back to the whole run because a step came in."""
        choices = [w for w in dict.fromkeys((round_down(last_step / 4), round_down(last_step / 16))) if w >= 10]
        if not self.window:
            return replace(self, window=choices[0] if choices else 0)
        return replace(self, window=next((w for w in choices if w < self.window), 0))

    def describe(self, smoothable: bool = True, loggable: bool = True) -> str:
        """The options that apply to one plot, for its title: "EMA 0.6 · log y · x=time · last 500"."""
        parts = []
        if self.smoothing and smoothable:
            parts.append(f"EMA {EMA_WEIGHT:g}")
        if self.log_scale and loggable:
            parts.append("log y")
        if self.x_axis == "time":
            parts.append("x=time")
        if self.window:
            parts.append(f"last {self.window:,}")
        return " · ".join(parts)


def round_down(n: float) -> int:
    """The largest 1, 2 or 5 times a power of ten that is <= n (0 below 1)."""
    if n < 1:
        return 0
    power = 10 ** math.floor(math.log10(n))
    return next(m * power for m in (5, 2, 1) if m * power <= n)
