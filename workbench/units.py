"""Numbers as people read them: metric values, percentages, counts, durations.

One module for the headless printer, the CLI's tables and the app, so they all
show the same figures the same way. Plain Python.
"""

from __future__ import annotations

import math

DASH = "-"  # shown for a number the run has not reported (yet, or at all on this device)


def number(x: float | None, digits: int = 4) -> str:
    """A metric value with `digits` significant digits: 1.997 to 3 reads "2.00", not "2" (which would
    say it is exactly 2); a value that is exact stays short (1.0 reads "1", 0.5 "0.5")."""
    if x is None:
        return DASH
    text = f"{x:.{digits}g}"
    if "e" in text or not math.isfinite(x) or float(text) == x:
        return text
    return f"{x:#.{digits}g}".rstrip(".")


def percent(x: float | None) -> str:
    return DASH if x is None else f"{100 * x:.1f}%"


def count(n: float | None) -> str:
    """1234 -> 1.23k, 1_500_000 -> 1.50M."""
    if n is None:
        return DASH
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.3g}"


def duration(seconds: float | None) -> str:
    """3725 -> 1:02:05, 65 -> 1:05."""
    if seconds is None or seconds != seconds or seconds < 0:
        return DASH
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
