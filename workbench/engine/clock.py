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
first), so no per-step host sync is needed here. Every reading comes from one
time source, `now` (monotonic seconds; a test passes its own and never sleeps).

A heavy step (many micro-steps, seconds to minutes each) still reports: the
clock says when a progress event is due between micro-steps (every
progress_every_s) and when a step event is due whatever log_every says (every
step_event_every_s of wall time), and how long a micro-step takes. Host time
too: on a GPU it is how fast micro-steps are queued, which the device's pace
bounds once the queue is full.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class RunClock:
    def __init__(
        self,
        progress_every_s: float = math.inf,
        step_event_every_s: float = math.inf,
        now: Callable[[], float] = time.perf_counter,
    ):
        """progress_every_s, step_event_every_s: train.* (the trainer passes them; by default never by the clock)."""
        self.now = now
        self.elapsed_before = self.active_before = 0.0  # earlier sessions of a resumed run
        self.session_start = now()
        self.idle_s = 0.0  # this session: paused or sampling
        self.aside_s = 0.0  # this session: evaluating or saving
        self._idle_depth = 0  # a sample decoded during a pause is one idle time, not two
        self.interval: Interval | None = None  # None until the session's first step is done
        self.progress_every_s, self.step_event_every_s = progress_every_s, step_event_every_s
        self.last_report = self.last_step_event = now()  # the last progress or step event
        self.start_step()

    def start_session(self) -> None:
        """The loop begins: this session's elapsed time counts from now."""
        self.session_start = self.now()
        self.last_report = self.last_step_event = self.now()

    def elapsed(self) -> float:
        return self.elapsed_before + self.now() - self.session_start

    def active(self) -> float:
        return self.active_before + self.now() - self.session_start - self.idle_s

    @contextmanager
    def idle(self) -> Iterator[None]:
        """Paused or sampling: out of the active time and of the interval's busy time."""
        start = self.now()
        self._idle_depth += 1
        try:
            yield
        finally:
            self._idle_depth -= 1
            if not self._idle_depth:
                self.idle_s += self.now() - start

    @contextmanager
    def aside(self) -> Iterator[None]:
        """Evaluating or saving: out of the interval's busy time (the ETA's active time keeps it).
        A pause or a sample inside (at an eval batch's boundary) is idle time, not aside time too."""
        start, idle_before = self.now(), self.idle_s
        try:
            yield
        finally:
            self.aside_s += self.now() - start - (self.idle_s - idle_before)

    # -- log intervals -------------------------------------------------------

    def start_interval(self, step: int) -> None:
        """Time the steps after `step` (called once the session's first step is done, and at each step event)."""
        self.interval = Interval(self.now(), step, self.idle_s + self.aside_s)

    def end_interval(self, step: int) -> tuple[int, float]:
        """(steps, busy seconds) since the interval began, and the next one begins."""
        i = self.interval
        busy = self.now() - i.start - (self.idle_s + self.aside_s - i.kept_out_before)
        self.start_interval(step)
        return step - i.first_step, max(busy, 1e-9)

    # -- heavy steps: reports by the wall clock ---------------------------------

    def start_step(self) -> None:
        """A step begins: its micro-steps are timed from now."""
        self.step_start, self.kept_out_at_step_start = self.now(), self.idle_s + self.aside_s

    def micro_s(self, done: int) -> float:
        """The mean time of the step's first `done` micro-steps, paused, sampling and saving time left out."""
        kept_out = self.idle_s + self.aside_s - self.kept_out_at_step_start
        return max(self.now() - self.step_start - kept_out, 0.0) / done

    def progress_due(self) -> bool:
        """progress_every_s since the last progress or step event: True, and the progress event counts as sent."""
        now = self.now()
        if now - self.last_report < self.progress_every_s:
            return False
        self.last_report = now
        return True

    def step_event_due(self) -> bool:
        """step_event_every_s of wall time since the last step event: log a step, whatever log_every says.
        Each rank's own clock: the ranks agree on it through the vote (Requests.at_boundary)."""
        return self.now() - self.last_step_event >= self.step_event_every_s

    def step_event_sent(self) -> None:
        """A step event went out: the next progress and step events are timed from now."""
        self.last_report = self.last_step_event = self.now()

    # -- checkpoint ------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"elapsed_s": self.elapsed(), "active_s": self.active()}

    def load_state_dict(self, state: dict) -> None:
        self.elapsed_before = state.get("elapsed_s", 0.0)
        self.active_before = state.get("active_s", self.elapsed_before)  # older checkpoints: no active time


@dataclass(frozen=True)
class Pace:
    """What a log interval's busy time is worth: tokens/sec, and MFU where the device's peak is known."""

    tokens_per_step: int
    flops_per_token: float  # model FLOPs of one token, forward and backward (config.flops_per_token)
    peak_flops: float | None  # every process's peak together; None off-GPU (MFU is then null)

    def rates(self, steps: int, busy_s: float) -> tuple[float | None, float | None]:
        """(tokens/sec, MFU) of `steps` steps in busy_s seconds (RunClock.end_interval). (None, None) for
        no steps: an interval that held only the session's first step, whose compile and warm-up are no measure."""
        if not steps:
            return None, None
        tokens_per_sec = steps * self.tokens_per_step / busy_s
        return tokens_per_sec, self.flops_per_token * tokens_per_sec / self.peak_flops if self.peak_flops else None


@dataclass
class Interval:
    """The steps between two step events: when they began, after which step, and the idle and aside time before."""

    start: float
    first_step: int
    kept_out_before: float
