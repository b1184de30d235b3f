"""The trainer's clock: what tokens/sec, the ETA's active time and the checkpoint's time are made of.

The clock reads a fake time source here: time passes when a test says so, and no test sleeps.
"""

import pytest

from workbench.engine.clock import Pace, RunClock


class FakeTime:
    def __init__(self, start: float = 1000.0):
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def test_the_first_step_and_the_time_kept_out_are_not_busy_time():
    now = FakeTime()
    clock = RunClock(now=now)
    clock.start_session()
    now.advance(30.0)  # the session's first step: a slow compile
    clock.start_interval(1)
    now.advance(0.5)  # training
    with clock.aside():  # an eval ...
        now.advance(1.0)
        with clock.idle():  # ... paused at one of its boundaries
            now.advance(2.0)
    now.advance(0.25)  # training
    steps, busy = clock.end_interval(3)
    assert steps == 2 and busy == pytest.approx(0.75)  # neither the compile nor the eval nor the pause
    assert clock.idle_s == pytest.approx(2.0) and clock.aside_s == pytest.approx(1.0)
    assert clock.elapsed() == pytest.approx(33.75) and clock.active() == pytest.approx(31.75)


def test_a_sample_inside_a_pause_is_one_idle_time():
    now = FakeTime()
    clock = RunClock(now=now)
    with clock.idle():
        now.advance(1.0)
        with clock.idle():
            now.advance(1.0)
    assert clock.idle_s == pytest.approx(2.0)


def test_the_clock_goes_on_from_its_checkpoint():
    now = FakeTime()
    clock = RunClock(now=now)
    clock.load_state_dict({"elapsed_s": 100.0, "active_s": 80.0})
    clock.start_session()
    now.advance(5.0)
    assert clock.state_dict() == pytest.approx({"elapsed_s": 105.0, "active_s": 85.0})
    older = RunClock(now=now)
    older.load_state_dict({"elapsed_s": 50.0})  # a checkpoint from before active time was kept
    assert older.active_before == 50.0


def test_heavy_steps_report_by_the_clock():
    now = FakeTime()
    clock = RunClock(progress_every_s=5.0, step_event_every_s=60.0, now=now)
    clock.start_session()
    clock.start_step()
    now.advance(4.0)
    assert not clock.progress_due()
    now.advance(2.0)
    assert clock.progress_due() and not clock.progress_due()  # due once, then timed from there
    with clock.idle():  # a pause between micro-steps is no micro-step time
        now.advance(100.0)
    assert clock.micro_s(2) == pytest.approx(3.0)
    assert clock.step_event_due()
    clock.step_event_sent()
    assert not clock.step_event_due()


def test_the_pace_of_an_interval():
    pace = Pace(tokens_per_step=1000, flops_per_token=6e6, peak_flops=1e12)
    tokens_per_sec, mfu = pace.rates(steps=4, busy_s=2.0)
    assert tokens_per_sec == 2000.0 and mfu == pytest.approx(6e6 * 2000 / 1e12)
    assert pace.rates(0, 1.0) == (None, None)  # the session's first step alone: no measure
    assert Pace(1000, 6e6, None).rates(4, 2.0) == (2000.0, None)  # off-GPU: no MFU
