"""The trainer's clock: what tokens/sec, the ETA's active time and the checkpoint's time are made of."""

import pytest

from workbench.engine import clock as clock_module
from workbench.engine.clock import RunClock


class FakeTime:
    """The clock module's `time`, advanced by the test: what the clock adds up, without sleeping."""

    def __init__(self):
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    perf_counter = time

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(clock_module, "time", fake)
    return fake


def test_the_first_step_and_the_time_kept_out_are_not_busy_time(fake_time):
    clock = RunClock()
    clock.start_session()
    fake_time.sleep(0.3)  # the session's first step: a slow compile
    clock.start_interval(1)
    with clock.aside():  # an eval ...
        fake_time.sleep(0.1)
        with clock.idle():  # ... paused at one of its boundaries
            fake_time.sleep(0.2)
    fake_time.sleep(0.05)  # training
    steps, busy = clock.end_interval(3)
    assert steps == 2 and busy == pytest.approx(0.05)  # neither the compile nor the eval nor the pause
    assert clock.idle_s == pytest.approx(0.2) and clock.aside_s == pytest.approx(0.1)
    assert clock.elapsed() == pytest.approx(0.65) and clock.active() == pytest.approx(0.45)


def test_a_sample_inside_a_pause_is_one_idle_time(fake_time):
    clock = RunClock()
    with clock.idle():
        fake_time.sleep(0.1)
        with clock.idle():
            fake_time.sleep(0.1)
    assert clock.idle_s == pytest.approx(0.2)


def test_the_clock_goes_on_from_its_checkpoint(fake_time):
    clock = RunClock()
    clock.load_state_dict({"elapsed_s": 100.0, "active_s": 80.0})
    clock.start_session()
    fake_time.sleep(2.0)
    state = clock.state_dict()
    assert state["elapsed_s"] == pytest.approx(102.0) and state["active_s"] == pytest.approx(82.0)
    older = RunClock()
    older.load_state_dict({"elapsed_s": 50.0})  # a checkpoint from before active time was kept
    assert older.active_before == 50.0
