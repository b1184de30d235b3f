"""The app's plain-Python parts: run state, curve maths, settings, batching."""

import json
import threading
from pathlib import Path

import pytest

from workbench.config import ConfigError
from workbench.runs import read_events
from workbench.tui.frame_pacer import FramePacer
from workbench.tui.messages import EventBatch, OutputArrived
from workbench.tui.run_state import RunState, Series
from workbench.tui.widgets.metric_plot import downsample, ema, nice_ticks
from workbench.tui.widgets.sample_console import NO_TOP_K, SampleSettings, parse_settings

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


def replay(name: str) -> RunState:
    state = RunState(FIXTURES / name)
    for event in read_events(FIXTURES / name):
        state.apply(event)
    return state


def test_completed_run_state_comes_from_its_events():
    state = replay("addition-completed")
    finished = json.loads((FIXTURES / "addition-completed" / "events.jsonl").read_text().splitlines()[-2])
    assert state.status == "finished" and state.finished == finished
    assert state.step == state.max_steps == 300
    assert state.best_val_loss == finished["best_val_loss"]
    assert "accuracy" in state.metrics
    assert len(state.series["loss"]) == 30 and len(state.series["val_loss"]) == 3
    assert state.series["loss"].values[-1] < state.series["loss"].values[0]
    assert state.eta_s is None  # finished: nothing left
    assert state.elapsed_s == state.last_step["elapsed_s"]  # from the events, not the clock


def test_eta_uses_the_pace_of_recent_steps():
    state = replay("addition-crashed")
    assert state.status == "training" and state.step == 150
    last, first = state.recent_steps[-1], state.recent_steps[0]
    pace = (last["elapsed_s"] - first["elapsed_s"]) / (last["step"] - first["step"])
    assert state.eta_s == pytest.approx((300 - 150) * pace)
    state.mark_crashed(-9, ["Killed"])
    assert state.status == "crashed" and state.crash.exit_code == -9 and state.eta_s is None


def test_resumed_steps_replace_the_ones_after_the_checkpoint():
    s = Series()
    for step in (10, 20, 30, 40):
        s.add(step, step / 10, 1.0 / step)
    s.add(30, 9.0, 0.5)  # the resume restarted from step 20's checkpoint
    assert s.steps == [10, 20, 30] and s.values[-1] == 0.5 and s.times[-1] == 9.0


def test_ema_is_tensorboards_debiased_average():
    assert ema([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # no bias towards 0
    smoothed = ema([0.0, 10.0], weight=0.5)
    assert smoothed == pytest.approx([0.0, (0.5 * 10) / (1 - 0.5**2)])


def test_downsample_keeps_at_most_the_buckets_and_the_means():
    xs = list(range(100))
    ys = [float(x) for x in xs]
    dx, dy = downsample(xs, ys, 10)
    assert len(dx) == 10 and dx[0] == pytest.approx(4.5) and dy[-1] == pytest.approx(94.5)
    assert downsample(xs[:5], ys[:5], 10) == (xs[:5], ys[:5])


def test_nice_ticks_are_round():
    assert nice_ticks(10, 300, 3) == [100, 200, 300]
    assert nice_ticks(0.0003, 0.003, 2) == pytest.approx([0.002])
    assert nice_ticks(5, 5, 3) == [5]


def test_sampling_settings_are_checked_like_the_cli():
    assert parse_settings("0.8", "200", "1.0", "50") == SampleSettings(0.8, 200, 1.0, 50)
    with pytest.raises(ConfigError, match="top-p must be in"):
        parse_settings("0.8", "200", "1.5", "50")
    with pytest.raises(ConfigError, match="must be numbers"):
        parse_settings("hot", "200", "1.0", "50")
    assert SampleSettings(top_k=0).command_fields()["top_k"] == NO_TOP_K


class FakeTarget:
    def __init__(self):
        self.posted = []

    def post_message(self, message):
        self.posted.append(message)
        return True


def test_event_batch_posts_once_per_burst():
    target = FakeTarget()
    batch = EventBatch(target, "trainer")
    threads = [threading.Thread(target=lambda: [batch.add_event({"event": "step", "step": i}) for i in range(500)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batch.add_stderr("warning")
    assert len(target.posted) == 1 and isinstance(target.posted[0], OutputArrived)
    events, stderr = target.posted[0].batch.drain()
    assert len(events) == 2000 and stderr == ["warning"]
    batch.add_event({"event": "log", "message": "next burst"})
    assert len(target.posted) == 2


def test_frame_pacer_keeps_the_app_within_its_cpu_budget():
    wall, cpu = [0.0], [0.0]
    pacer = FramePacer(budget=0.02, min_interval_s=0.5, max_interval_s=5.0, clock=lambda: wall[0], cpu_clock=lambda: cpu[0])
    wall[0] = 0.4
    assert not pacer.frame_due()  # too soon
    wall[0] = 1.0
    assert pacer.frame_due()  # idle app: a frame every min interval
    cpu[0] += 0.03  # that frame cost 30 ms of CPU
    wall[0] = 1.5
    assert not pacer.frame_due()  # 30 ms in 0.5 s is 6%: wait
    wall[0] = 2.5
    assert pacer.frame_due()  # 30 ms in 1.5 s is 2%: draw
    cpu[0] += 1.0  # something else is busy
    wall[0] = 7.5
    assert pacer.frame_due()  # but the screen never goes stale for more than max interval
