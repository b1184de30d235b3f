"""The ETA, as the headless printer and the app compute it."""

from __future__ import annotations


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
