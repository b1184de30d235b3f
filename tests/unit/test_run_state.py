"""The one fold of events into run state: its clock, its ETA and when a run is finished."""

import pytest

from workbench import units
from workbench.run_state import RunState

CONFIG = {"preset": "p", "train": {"max_steps": 100}}


def started(t: float, elapsed: float = 0.0) -> dict:
    return {"event": "run_started", "t": t, "config": CONFIG, "elapsed_s": elapsed, "tokens_per_step": 64}


def step(n: int, t: float, elapsed: float, active: float | None = None) -> dict:
    active = elapsed if active is None else active
    fields = {"loss": 1.0, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_sec": 10.0, "mfu": None}
    return {"event": "step", "t": t, "step": n, "elapsed_s": elapsed, "active_s": active, **fields}


def fold(*events) -> RunState:
    state = RunState("run")
    for e in events:
        assert state.apply(e), e
    return state


def test_elapsed_runs_on_through_a_pause_and_stops_at_the_end():
    state = fold(started(1000.0), step(10, 1010.0, 10.0))
    state.apply({"event": "status", "t": 1011.0, "state": "paused"})
    state.apply({"event": "system", "t": 1040.0})  # no step while paused, but time goes on
    assert state.elapsed_s == pytest.approx(40.0)
    state.apply({"event": "run_finished", "t": 1050.0, "reason": "stopped", "step": 10})
    state.apply({"event": "status", "t": 1050.0, "state": "finished"})
    assert state.elapsed_s == pytest.approx(50.0)
    # a resume: the time between the two trainers is no time of the run's
    state.apply({"event": "status", "t": 5000.0, "state": "starting", "pid": 1})
    assert state.finished is None and state.elapsed_s == pytest.approx(50.0)
    state.apply(started(5001.0, elapsed=48.0))  # the checkpoint's clock
    state.apply({"event": "status", "t": 5003.0, "state": "compiling"})
    assert state.elapsed_s == pytest.approx(50.0)


def test_the_eta_counts_evals_into_the_pace_and_holds_steady_across_them():
    """Steps of 1 s logged every 10, one eval of 50 s after step 50: the eval's time joins the pace
    and stays in it; a pace over the last few step events would jump up, then back down once it passed."""
    state = fold({**started(0.0), "config": {"train": {"max_steps": 200}}})
    t, paces = 0.0, []
    for n in range(10, 200, 10):
        t += 10.0 + (50.0 if n == 60 else 0.0)
        state.apply(step(n, t, t))
        if n == 50:
            state.apply({"event": "eval", "t": t + 50.0, "step": 50, "val_loss": 1.0, "metrics": {}})
        if n > 10:
            paces.append(state.eta_s / (200 - n))  # seconds per step the ETA assumes
    assert paces[0] == pytest.approx(1.0)
    assert all(abs(b - a) / a < 0.1 for a, b in zip(paces[5:], paces[6:]))  # after the eval: no jumps


def test_the_eta_leaves_out_the_first_steps_compile_and_idle_time():
    state = fold(started(0.0), step(10, 60.0, 60.0))  # the first interval compiled for 50 s
    assert state.eta_s is None  # one step event: no pace yet
    state.apply(step(20, 80.0, 80.0, active=70.0))  # 10 s of it sampling (not active)
    assert state.eta_s == pytest.approx(80 * 1.0)


def test_finished_means_the_last_start_has_its_run_finished():
    state = fold(started(0.0), {"event": "run_finished", "t": 1.0, "reason": "completed", "step": 0})
    assert state.outcome == "completed"
    state.apply(started(2.0))
    assert state.finished is None and state.outcome == "crashed"  # until it says how it ended
    assert RunState("run").outcome == "empty"


def test_an_event_of_the_wrong_shape_changes_nothing():
    state = fold(started(0.0), step(10, 1.0, 1.0))
    bad = {"event": "eval", "t": 2.0, "step": "three hundred", "val_loss": "low", "metrics": [1]}
    assert not state.apply(bad)
    assert state.bad_events == 1 and state.best_val_loss is None and state.task_scores == {} and state.step == 10


def test_a_live_view_ticks_between_events_and_a_long_first_step_has_an_eta():
    state = fold(started(1000.0))
    progress = {"event": "progress", "t": 1012.0, "stage": "micro_step", "step": 1, "done": 2, "total": 8}
    state.apply(progress | {"micro_s": 6.0, "tokens_seen": 128})
    assert state.eta_s == (6 + 99 * 8) * 6.0  # this step's 6 micro-steps left, then 99 steps of 8
    assert state.elapsed_at(None) == 12.0 and state.elapsed_at(1015.0) == 15.0  # the events' clock, run on
    assert state.eta_at(1015.0) == state.eta_s - 3.0
    state.apply({"event": "system", "t": 1014.0})  # counted from the event the ETA was reckoned at, not the latest
    assert state.eta_at(1015.0) == state.eta_s - 3.0 and state.elapsed_at(1015.0) == 15.0


def test_a_value_rounded_to_fewer_digits_keeps_its_zeros():
    assert units.number(1.997, 3) == "2.00" and units.number(1.0) == "1" and units.number(0.5634, 3) == "0.563"
