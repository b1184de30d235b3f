"""Numbers as people read them: durations, counts, ETA.

Shared by the headless printer and the app, so both show the same figures.
"""

from __future__ import annotations


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_count(n: float | None) -> str:
    """1234 -> 1.23k, 1_500_000 -> 1.50M."""
    if n is None:
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.3g}"


def eta_seconds(step_events: list[dict], max_steps: int, window: int = 5) -> float | None:
    """Time left at the recent pace (the last `window` step events).

    Uses event time stamps only, so a replayed run shows the ETA it had then.
    """
    if len(step_events) < 2:
        return None
    a, b = step_events[max(0, len(step_events) - 1 - window)], step_events[-1]
    steps = b["step"] - a["step"]
    if steps <= 0:
        return None
    per_step = (b["elapsed_s"] - a["elapsed_s"]) / steps
    return max(0.0, (max_steps - b["step"]) * per_step)
