"""FramePacer: how often the dashboard may redraw without slowing training.

On a small machine the trainer uses every core, so each frame the app draws
is time taken from training. The pacer gives the app a CPU budget: a new frame
is due only once the app's CPU time since the last frame (the rendering of
that frame and the reading of the trainer's pipe included) is within `budget`
of the wall time since. Cheap frames
(a small terminal) come often, expensive ones (a big terminal, many points)
come less often, and the app never takes more than its share.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class FramePacer:
    def __init__(
        self,
        budget: float = 0.008,
        min_interval_s: float = 1.0,
        max_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
    ):
        # Share of one core the app may spend, on average, all its work between two frames counted
        # (1% is the app's bar; the frames start a little under it, for the bursts no pacer sees coming).
        self.budget = budget
        self.min_interval_s = min_interval_s  # never more often (at most a few frames a second)
        self.max_interval_s = max_interval_s  # never less often (the screen must stay live)
        self.clock, self.cpu_clock = clock, cpu_clock
        self._wall, self._cpu = clock(), cpu_clock()

    def frame_due(self) -> bool:
        """True (and the frame is counted) when a frame fits the budget now."""
        wall, cpu = self.clock(), self.cpu_clock()
        elapsed = wall - self._wall
        if elapsed < self.min_interval_s:
            return False
        if elapsed < self.max_interval_s and cpu - self._cpu > self.budget * elapsed:
            return False
        self._wall, self._cpu = wall, cpu
        return True
