"""The app's plain-Python parts: run state, curve maths, settings, batching."""

import json
import threading
from pathlib import Path

import pytest

from workbench.config import ConfigError
from workbench.run_state import RunState, Series
from workbench.runs import read_events
from workbench.tui.config_values import changed_keys, differing_keys, flat_values, preset_values
from workbench.tui.frame_pacer import FramePacer
from workbench.tui.messages import EventBatch, OutputArrived
from workbench.tui.plot_math import downsample, ema, log_ticks, nice_ticks, spread, tick_labels, time_ticks
from workbench.tui.plot_options import PlotOptions
from workbench.tui.widgets.sample_console import NO_TOP_K, SampleSettings, parse_settings

FIXTURES = Path(__file__).parents[1] / "fixtures" / "runs"


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
    assert "accuracy" in state.task_scores
    assert len(state.series["loss"]) == 30 and len(state.series["val_loss"]) == 3
    assert state.series["loss"].values[-1] < state.series["loss"].values[0]
    assert state.eta_s is None  # finished: nothing left
    # from the events, not the clock: the last step's time, on to the run_finished
    assert state.elapsed_s == pytest.approx(state.last_step["elapsed_s"] + finished["t"] - state.last_step["t"])


def test_eta_uses_the_pace_of_the_session_so_far():
    state = replay("addition-crashed")
    assert state.status == "training" and state.step == 150
    last, first = state.last_step, state.session_first_step
    assert "active_s" not in last  # recorded before the trainer reported active time: elapsed time it is
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


def test_nice_ticks_are_round_and_at_least_two():
    assert nice_ticks(10, 300, 3) == [100, 200, 300]
    assert nice_ticks(0.0003, 0.003, 2) == pytest.approx([0.001, 0.002, 0.003])
    assert nice_ticks(5, 5, 3) == [5]
    # A small plot asks for 2 ticks over a narrow range: a coarse step would fit only one.
    assert nice_ticks(1.23, 1.9, 2) == pytest.approx([1.4, 1.6, 1.8])
    assert nice_ticks(10, 300, 1) == [100, 200, 300]  # 1 asked, 2 at least
    assert len(nice_ticks(*spread(2.09, 2.09), 2)) >= 2  # one point so far: the axis still gets a range
    assert spread(0.0, 0.0) == (-1.0, 1.0) and spread(2.0, 2.0, log=True)[0] > 0
    assert nice_ticks(1, 4, 6, integer=True) == [1, 2, 3, 4]  # steps: no 1.5


def test_tick_labels_tell_neighbours_apart():
    assert tick_labels([10.82, 10.84, 10.86]) == ["10.82", "10.84", "10.86"]
    assert tick_labels([0.001, 0.002]) == ["0.001", "0.002"] and tick_labels([31_000, 32_000]) == ["31k", "32k"]


def test_log_ticks_are_round_and_at_least_two():
    assert log_ticks(0.05, 30, 4) == pytest.approx([0.1, 1, 10])  # decades where it spans them
    assert log_ticks(0.8, 3.0, 4) == pytest.approx([1, 2])  # 1-2-5 within a decade or two
    assert log_ticks(1.1, 1.9, 4) == pytest.approx([1.2, 1.4, 1.6, 1.8])  # narrower: linear
    assert len(log_ticks(1e-4, 1e4, 3)) <= 4


def test_time_ticks_are_round_durations():
    assert time_ticks(0, 300, 3) == [0, 120, 240]  # every 2 minutes
    assert time_ticks(12, 40, 2) == [15, 30]  # at least two, on round seconds
    assert time_ticks(0, 7200, 2) == [0, 3600, 7200]


def test_plot_options_toggle_zoom_and_describe_themselves():
    o = PlotOptions()
    assert o.describe() == "EMA 0.6" and o.describe(smoothable=False) == ""
    o = o.toggled("log_scale").toggled("x_axis")
    assert o.describe() == "EMA 0.6 · log y · x=time" and o.describe(loggable=False) == "EMA 0.6 · x=time"
    assert o.toggled("x_axis").x_axis == "step"
    zooms = [o.zoomed(3000).window]
    for _ in range(3):
        zooms.append(PlotOptions(window=zooms[-1]).zoomed(3000).window)
    assert zooms == [500, 100, 0, 500]  # the last quarter, sixteenth (round numbers), the whole run
    assert PlotOptions().zoomed(20) == PlotOptions()  # too short to zoom
    # The run grew from 3,000 to 4,000 steps (choices 1,000 and 200) between two presses: narrower still.
    assert PlotOptions(window=500).zoomed(4000).window == 200
    assert PlotOptions(window=100).zoomed(4000).window == 0


def feed(state: RunState, *events: dict) -> None:
    for e in events:
        assert state.apply(e)


def test_a_command_shows_as_requested_until_the_trainer_answers(tmp_path):
    state = RunState(tmp_path)
    feed(state, {"event": "status", "state": "training", "t": 1.0})
    state.request("pause")
    assert state.badge == "pause requested"
    feed(state, {"event": "status", "state": "evaluating", "t": 2.0})
    assert state.badge == "pause requested"  # not an answer to a pause
    feed(state, {"event": "status", "state": "paused", "t": 3.0})
    assert state.badge == "paused"
    state.request("stop")
    feed(state, {"event": "status", "state": "stopping", "t": 4.0})
    assert state.badge == "stopping"


def test_a_stopped_run_says_stopped_not_finished():
    state = replay("addition-completed")
    assert state.badge == "completed"
    stopped = RunState(FIXTURES / "addition-completed")
    feed(
        stopped,
        {"event": "run_finished", "reason": "stopped", "step": 40, "best_val_loss": None, "metrics": {}, "t": 1.0},
        {"event": "status", "state": "finished", "t": 1.0},
    )
    assert stopped.badge == "stopped"


def step(n: int, elapsed: float, t: float) -> dict:
    return {
        "event": "step",
        "step": n,
        "loss": 1.0,
        "lr": 1e-3,
        "grad_norm": 1.0,
        "tokens_per_sec": 100.0,
        "mfu": None,
        "elapsed_s": elapsed,
        "t": t,
    }


def test_eta_goes_at_the_pace_of_active_time(tmp_path):
    state = RunState(tmp_path)
    state.max_steps = 100
    feed(state, {**step(10, 10.0, 110.0), "active_s": 10.0})
    feed(
        state, {"event": "status", "state": "paused", "t": 110.0}, {"event": "status", "state": "training", "t": 170.0}
    )
    # 90 s of wall time for 10 steps, 80 of them paused or sampling: the trainer's active time says 10 s.
    feed(state, {**step(20, 100.0, 200.0), "active_s": 20.0})
    assert state.eta_s == pytest.approx(80 * 1.0)
    assert state.elapsed_s == 100.0


def test_malformed_events_are_counted_not_fatal(tmp_path):
    state = RunState(tmp_path)
    assert not state.apply({"event": "step", "loss": 1.0})  # no step
    assert not state.apply({"event": "eval", "val_loss": 1.0})  # no step
    assert not state.apply({"event": "run_finished", "step": 3})  # no reason
    assert state.bad_events == 3
    assert state.apply({"event": "status", "state": "training", "t": 1.0})


def test_system_and_task_metrics_are_kept():
    state = replay("addition-completed")
    assert set(state.task_series) == {"accuracy", "accuracy_all"} and len(state.task_series["accuracy"]) == 3
    feed(
        state,
        {
            "event": "system",
            "cpu_percent": 97,
            "cpu_count": 2,
            "ram_used_gb": 3.0,
            "ram_total_gb": 24.0,
            "rss_gb": 0.4,
            "gpus": [],
            "t": 1.0,
        },
    )
    assert state.system["cpu_percent"] == 97


def test_config_values_mark_what_differs():
    config = json.loads((FIXTURES / "addition-lr1e-3" / "config.json").read_text())
    values = flat_values(config)
    assert values["train.lr"] == "0.001" and values["model.bias"] == "true"
    preset = preset_values(config)  # the addition preset as shipped, without the run's --set
    assert "train.lr" in changed_keys(values, preset)
    assert "model.vocab_size" not in changed_keys(values, preset)  # 0 in the preset: the tokenizer decides
    other = flat_values(json.loads((FIXTURES / "addition-completed" / "config.json").read_text()))
    assert differing_keys([values, other]) == ["train.lr"]


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
    threads = [
        threading.Thread(target=lambda: [batch.add_event({"event": "step", "step": i}) for i in range(500)])
        for _ in range(4)
    ]
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
    pacer = FramePacer(
        budget=0.02, min_interval_s=0.5, max_interval_s=5.0, clock=lambda: wall[0], cpu_clock=lambda: cpu[0]
    )
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
