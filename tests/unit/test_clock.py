"""The trainer's clock: what tokens/sec, the ETA's active time and the checkpoint's time are made of."""

import time

import pytest

from workbench.engine.clock import RunClock


def test_the_first_step_and_the_time_kept_out_are_not_busy_time():
    clock = RunClock()
    clock.start_session()
    time.sleep(0.3)  # the session's first step: a slow compile
    clock.start_interval(1)
    with clock.aside():  # an eval ...
        time.sleep(0.1)
        with clock.idle():  # ... paused at one of its boundaries
            time.sleep(0.2)
    steps, busy = clock.end_interval(3)
    assert steps == 2 and busy < 0.1  # neither the compile nor the eval nor the pause
    assert clock.idle_s == pytest.approx(0.2, abs=0.05) and clock.aside_s == pytest.approx(0.1, abs=0.05)
    assert clock.active() == pytest.approx(clock.elapsed() - clock.idle_s, abs=0.01)


def test_a_sample_inside_a_pause_is_one_idle_time():
    clock = RunClock()
    with clock.idle():
        time.sleep(0.1)
        with clock.idle():
            time.sleep(0.1)
    assert clock.idle_s == pytest.approx(0.2, abs=0.05)


def test_the_clock_goes_on_from_its_checkpoint():
    clock = RunClock()
    clock.load_state_dict({"elapsed_s": 100.0, "active_s": 80.0})
    clock.start_session()
    state = clock.state_dict()
    assert 100.0 <= state["elapsed_s"] < 101.0 and 80.0 <= state["active_s"] < 81.0
    older = RunClock()
    older.load_state_dict({"elapsed_s": 50.0})  # a checkpoint from before active time was kept
    assert older.active_before == 50.0
