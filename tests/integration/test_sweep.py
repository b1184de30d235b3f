"""`gptbench sweep` and `gptbench sweeps` with real trainers on tiny addition models.

Each sweep here trains 3 to 6 one-layer models on 1-digit addition (100
problems, so an eval is instant) for 40 steps: a trainer's start-up is most
of a trial's time. The sweeps run as a user runs them, as subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from command_line import gptbench
from screen_text import until, visible_text

from workbench.tui.app import GPTBenchApp
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.run import RunScreen
from workbench.tui.screens.sweeps import SweepsScreen
from workbench.tui.widgets.metric_plot import MetricPlot

TINY = [
    "data.ndigit=1",
    "data.holdout=20",
    "model.n_layer=1",
    "model.n_head=2",
    "model.n_embd=16",
    "train.batch_size=32",
    "train.max_steps=40",
    "train.eval_every=20",
    "train.warmup_steps=0",
    "train.min_lr=0",
]


def sweep_args(*args: str, sets: list[str] = TINY) -> list[str]:
    return ["sweep", "addition", *args, *(a for s in sets for a in ("--set", s)), "--headless", "--json"]


def sweep_events(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def report(sweep_dir: Path) -> dict:
    out = gptbench("sweeps", str(sweep_dir), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def run_events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def finishes(run_dir: Path) -> list[str]:
    return [e["reason"] for e in run_events(run_dir) if e["event"] == "run_finished"]


def files_of(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


def test_a_killed_sweep_continues_and_ranks_four_settings(tmp_path):
    """4 settings x 1 seed, 2 at a time; kill -9 of the sweep (and of one trainer) mid-way; the same
    command again: every trial finishes once, finished trials are untouched, the report ranks them."""
    sweep_dir = tmp_path / "lr"
    args = sweep_args("--grid", "train.lr=1e-2,3e-3,1e-3,3e-4", "--parallel", "2", "--sweep-dir", str(sweep_dir))
    sweep = subprocess.Popen(
        [sys.executable, "-m", "workbench", *args], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    finished, started = [], []
    for line in sweep.stdout:  # until one trial has finished and the third has started
        e = json.loads(line)
        finished += [e["number"]] if e["event"] == "trial_finished" else []
        started += [e["number"]] if e["event"] == "trial_started" else []
        if finished and len(started) >= 3:
            break
    sweep.kill()
    sweep.wait()
    # The trainers outlive the sweep (their own sessions); kill the newest one too, so it must resume.
    newest = sweep_dir / "trials" / f"trial-{started[-1]:04d}"
    deadline = time.monotonic() + 60
    while not (newest / "events.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = next(e["pid"] for e in run_events(newest) if e["event"] == "status" and e.get("pid"))
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    done = sweep_dir / "trials" / f"trial-{finished[0]:04d}"
    before = files_of(done)

    again = gptbench(*args, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    events = sweep_events(again.stdout)
    assert events[-1]["event"] == "sweep_finished" and events[-1]["failed"] == 0
    assert finished[0] not in [e["number"] for e in events if e["event"] == "trial_started"]
    trials = sorted((sweep_dir / "trials").iterdir())
    assert len(trials) == 4
    assert all(finishes(t)[-1] == "completed" and finishes(t).count("completed") == 1 for t in trials)
    assert files_of(done) == before

    r = report(sweep_dir)
    assert [s["rank"] for s in r["settings"]] == [1, 2, 3, 4]
    medians = [s["objective"]["median"] for s in r["settings"]]
    assert medians == sorted(medians)
    assert {t["status"] for t in r["trials"]} == {"completed"}
    assert all(t["slot"]["threads"] and t["slot"]["concurrent"] == 2 for t in r["trials"])


def test_two_workers_on_one_storage_share_the_trials(tmp_path):
    """Two sweep processes on one study, as two machines would run it: 6 trials, none run twice."""
    sweep_dir = tmp_path / "shared"
    args = sweep_args("--grid", "train.lr=1e-2,3e-3,1e-3", "--seeds", "2", "--parallel", "1")
    args += ["--sweep-dir", str(sweep_dir), "--storage", f"journal:{tmp_path / 'study.log'}"]
    workers = [
        subprocess.Popen([sys.executable, "-m", "workbench", *args], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    started = [e["number"] for out in outs for e in sweep_events(out) if e["event"] == "trial_started"]
    assert sorted(started) == list(range(6))  # each trial started by exactly one worker
    r = report(sweep_dir)
    assert sorted((tuple(t["params"].items()), t["seed"]) for t in r["trials"]) == sorted(
        ((("train.lr", lr),), seed) for lr in ("1e-2", "3e-3", "1e-3") for seed in (0, 1)
    )
    assert all(t["status"] == "completed" for t in r["trials"])
    assert all(finishes(Path(t["run_dir"])) == ["completed"] for t in r["trials"])


@pytest.fixture(scope="module")
def pruned_sweep(tmp_path_factory):
    """A live sweep: two good learning rates and a hopeless one (1000x too small), one at a time, with the
    median pruner. GridSampler's fixed order runs the hopeless one last, after two completed trials. The
    good ones stop at a val loss of 2.05 (tens of steps); the hopeless one would train all 300 steps.
    The Sweeps view watches it run; the pruner's test reads it once it is done."""
    root = tmp_path_factory.mktemp("pruned") / "runs"
    sweep_dir = root / "sweeps" / "lr"
    sets = [s for s in TINY if not s.startswith(("train.max_steps", "train.eval_every"))]
    sets += ["train.max_steps=300", "train.eval_every=10", "train.target_val_loss=2.05"]
    args = sweep_args("--grid", "train.lr=1e-5,1e-2,5e-3", "--parallel", "1", "--prune", "median", sets=sets)
    sweep = subprocess.Popen(
        [sys.executable, "-m", "workbench", *args, "--sweep-dir", str(sweep_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "GPTBENCH_RUNS": str(root)},
    )
    yield sweep_dir, sweep
    if sweep.poll() is None:
        sweep.kill()


async def seen(pilot, text: str, timeout: float) -> str:
    """Wait until `text` is on the screen (read once a second: a screenshot costs the trainers CPU)."""
    deadline = time.monotonic() + timeout
    while text not in (screen := visible_text(pilot.app)):
        assert time.monotonic() < deadline, f"timed out waiting for {text!r} on:\n{screen}"
        await pilot.pause(1.0)
    return screen


async def test_the_sweeps_view_shows_trials_appear_finish_and_get_pruned(pruned_sweep, monkeypatch):
    sweep_dir, sweep = pruned_sweep
    monkeypatch.setenv("GPTBENCH_RUNS", str(sweep_dir.parents[1]))
    deadline = time.monotonic() + 60
    while not (sweep_dir / "sweep.json").exists():
        assert time.monotonic() < deadline and sweep.poll() is None, sweep.stderr.read() if sweep.poll() else ""
        time.sleep(0.2)
    app = GPTBenchApp(sweep=sweep_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await seen(pilot, "queued", 30)  # the grid's trials, before any has started
        await seen(pilot, "running", 120)
        await seen(pilot, "completed", 300)
        screen = await seen(pilot, "pruned", 300)
        assert "★ train.lr=" in screen  # the best setting, marked
        assert "val loss of every trial" in screen
        plot = app.screen.query_one(MetricPlot)
        assert len(plot.curves) == 3 and len({c.style.color for c in plot.curves}) == 3  # a colour per setting
        # space marks, c compares the marked trials; enter opens one trial's run
        table = app.screen.query_one("#trials-table")
        table.focus()
        await pilot.press("space", "down", "space", "c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen), "the compare view")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, SweepsScreen), "back to the sweep")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunScreen), "the trial's run view")


def test_the_pruner_stops_a_hopeless_setting_early(pruned_sweep):
    sweep_dir, sweep = pruned_sweep
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, out + err
    r = report(sweep_dir)
    by_lr = {t["params"]["train.lr"]: t for t in r["trials"]}
    assert by_lr["1e-5"]["status"] == "pruned"
    assert by_lr["1e-5"]["steps"] < 300
    assert by_lr["1e-2"]["status"] == by_lr["5e-3"]["status"] == "completed"
    hopeless = Path(by_lr["1e-5"]["run_dir"])
    assert finishes(hopeless) == ["pruned"]
    assert (hopeless / "last.pt").exists()  # stopped like a user stop: checkpoint kept
    runs = gptbench("runs", str(sweep_dir / "trials"), "--json")
    assert "pruned" in {r["status"] for r in json.loads(runs.stdout)}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--grid", "train.lrr=1e-3,1e-2"], "Unknown config key 'train.lrr'"),
        (["--grid", "model.n_head=3,5"], "model.n_embd=48 is not divisible by model.n_head=5"),
    ],
    ids=["unknown key", "refused setting"],
)
def test_bad_input_is_one_sentence_and_creates_nothing(tmp_path, args, says):
    """The CLI's end of it (exit 2, nothing on disk); tests/unit/test_sweep_spec.py has every other case."""
    out = gptbench("sweep", "addition", *args, "--headless", cwd=tmp_path)
    assert out.returncode == 2
    assert says in out.stderr and "hint:" in out.stderr
    assert "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []
