"""RunClock: the trainer's time, kept three ways.

- elapsed: wall time since the run began, across resumes (the checkpoint keeps
  it): the x axis of the time plots;
- active: elapsed without the time spent paused or sampling: the pace the ETA
  goes by (evals and checkpoints stay in, since every step to come pays them too);
- busy: the time of one log interval spent training, without evals and saves
  either, and never the session's first step (it compiles the graph and warms
  the allocator up): what tokens/sec and MFU are measured over.

Idle and aside time are measured around the work (`with clock.idle():`), on
the host, after the device has caught up where it matters (the trainer syncs
first), so no per-step host sync is needed here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class RunClock:
    def __init__(self):
        self.elapsed_before = self.active_before = 0.0  # earlier sessions of a resumed run
        self.session_start = time.time()
        self.idle_s = 0.0  # this session: paused or sampling
        self.aside_s = 0.0  # this session: evaluating or saving
        self._idle_depth = 0  # a sample decoded during a pause is one idle time, not two
        self.interval: Interval | None = None  # None until the session's first step is done

    def start_session(self) -> None:
        """The loop begins: this session's elapsed time counts from now."""
        self.session_start = time.time()

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.session_start

    def active(self) -> float:
        return self.active_before + time.time() - self.session_start - self.idle_s

    @contextmanager
    def idle(self) -> Iterator[None]:
        """Paused or sampling: out of the active time and of the interval's busy time."""
        start = time.perf_counter()
        self._idle_depth += 1
        try:
            yield
        finally:
            self._idle_depth -= 1
            if not self._idle_depth:
                self.idle_s += time.perf_counter() - start

    @contextmanager
    def aside(self) -> Iterator[None]:
        """Evaluating or saving: out of the interval's busy time (the ETA's active time keeps it).
        A pause or a sample inside (at an eval batch's boundary) is idle time, not aside time too."""
        start, idle_before = time.perf_counter(), self.idle_s
        try:
            yield
        finally:
            self.aside_s += time.perf_counter() - start - (self.idle_s - idle_before)

    # -- log intervals -------------------------------------------------------

    def start_interval(self, step: int) -> None:
        """Time the steps after `step` (called once the session's first step is done, and at each step event)."""
        self.interval = Interval(time.perf_counter(), step, self.idle_s + self.aside_s)

    def end_interval(self, step: int) -> tuple[int, float]:
        """(steps, busy seconds) since the interval began, and the next one begins."""
        i = self.interval
        busy = time.perf_counter() - i.start - (self.idle_s + self.aside_s - i.kept_out_before)
        self.start_interval(step)
        return step - i.first_step, max(busy, 1e-9)

    # -- checkpoint ------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"elapsed_s": self.elapsed(), "active_s": self.active()}

    def load_state_dict(self, state: dict) -> None:
        self.elapsed_before = state.get("elapsed_s", 0.0)
        self.active_before = state.get("active_s", self.elapsed_before)  # older checkpoints: no active time


@dataclass
class Interval:
    """The steps between two step events: when they began, after which step, and the idle and aside time before."""

    start: float
    first_step: int
    kept_out_before: float
