"""CurveStyle: how a curve looks: a colour, and a marker that tells it apart without colour.

Colours are xterm-256 indices because plotext and Rich name colours
differently (Rich rejects plotext's "orange"); an index means the same to both.
With NO_COLOR every curve is drawn in the foreground colour (a dim grey from a
dark colour would all but vanish), so markers carry the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..metrics import Metric


@dataclass(frozen=True)
class CurveStyle:
    color: int  # xterm-256 index
    marker: str  # plotext's "braille" (a thin line) or one character

    def plot_color(self, no_color: bool) -> int | str:
        return "default" if no_color else self.color

    @property
    def rich_color(self) -> str:
        return f"color({self.color})"

    @property
    def symbol(self) -> str:
        """What stands for the curve in a legend."""
        return "─" if self.marker == "braille" else self.marker


def metric_style(metric: Metric) -> CurveStyle:
    """How a metric's curve looks on the run dashboard (its colour and marker are in metrics.py)."""
    return CurveStyle(metric.color, metric.marker)


# Compared runs, in order: each a colour of its own and a marker of its own.
RUN_STYLES = (
    CurveStyle(45, "braille"),
    CurveStyle(208, "•"),
    CurveStyle(77, "+"),
    CurveStyle(170, "x"),
    CurveStyle(220, "o"),
    CurveStyle(203, "*"),
    CurveStyle(69, "#"),
    CurveStyle(250, "="),
)


def run_style(index: int) -> CurveStyle:
    return RUN_STYLES[index % len(RUN_STYLES)]
