"""How metric values read on screen (durations and counts: workbench.progress, shared with headless)."""

from __future__ import annotations

DASH = "-"  # shown for a number the run has not reported (yet, or at all on this device)


def number(x: float | None, digits: int = 4) -> str:
    """A metric value with `digits` significant digits."""
    return DASH if x is None else f"{x:.{digits}g}"


def percent(x: float | None) -> str:
    return DASH if x is None else f"{100 * x:.1f}%"
