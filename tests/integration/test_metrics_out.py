"""Metrics out: CSV and TensorBoard exports, and the live sinks (TensorBoard, W&B offline, trackio)."""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from command_line import TINY_CHAR, gptbench, sets

from workbench.runs import read_events

TINY = [*TINY_CHAR, "train.max_steps=20", "train.eval_every=10"]


def train(run_dir: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The tiny run, with the sinks `overrides` turn on; its outcome is the test's to check."""
    return gptbench(
        "run", "shakespeare-char", "--headless", "--run-dir", str(run_dir), *sets([*TINY, *overrides]), env=env
    )


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_csv_and_tensorboard_exports_hold_every_logged_metric(tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = tmp_path / "run"
    assert train(run_dir).returncode == 0
    events = read_events(run_dir)
    steps = [e for e in events if e["event"] == "step"]
    evals = {e["step"]: e["val_loss"] for e in events if e["event"] == "eval"}

    out = gptbench("export", str(run_dir), "--format", "csv", "--out", "-")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [int(r["step"]) for r in rows] == [e["step"] for e in steps] == [5, 10, 15, 20]
    for row, e in zip(rows, steps):
        assert float(row["loss"]) == pytest.approx(e["loss"]) and float(row["lr"]) == pytest.approx(e["lr"])
        assert float(row["grad_norm"]) == pytest.approx(e["grad_norm"]) and float(row["tokens_per_sec"]) > 0
        assert (float(row["val_loss"]) if row["val_loss"] else None) == (
            pytest.approx(evals[e["step"]]) if e["step"] in evals else None
        )
    assert rows[0]["mfu"] == ""  # null off-GPU: an empty cell, not "None"

    tb = tmp_path / "tb"
    assert gptbench("export", str(run_dir), "--format", "tensorboard", "--out", str(tb)).returncode == 0
    scalars = tensorboard_scalars(tb)
    assert [s for s, _ in scalars["train/loss"]] == [5, 10, 15, 20]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([e["loss"] for e in steps], rel=1e-6)
    assert dict(scalars["val/loss"]) == pytest.approx(evals, rel=1e-6)


def test_addition_task_metrics_become_csv_columns(tmp_path):
    run_dir = tmp_path / "add"
    short = sets(["train.max_steps=20", "train.eval_every=10", "train.log_every=10"])
    assert gptbench("run", "addition", "--headless", "--run-dir", str(run_dir), *short).returncode == 0
    target = tmp_path / "m.csv"
    out = gptbench("export", str(run_dir), "--format", "csv", "--out", str(target))
    assert out.returncode == 0 and "2 rows" in out.stdout
    rows = list(csv.DictReader(target.open()))
    assert (
        [r["step"] for r in rows] == ["10", "20"]
        and 0.0 <= float(rows[-1]["accuracy"]) <= 1.0
        and rows[-1]["accuracy_all"]
    )


def wait_for(predicate, timeout: float = 90.0):
    """The sinks close in their own process after the CLI returns: give them time."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError("timed out waiting for the metric sinks")


def test_live_sinks_get_the_runs_metrics(tmp_path):
    """log.tensorboard, log.wandb (WANDB_MODE=offline) and log.trackio, all fed from events.jsonl."""
    for package in ("tensorboard", "wandb", "trackio"):
        pytest.importorskip(package)
    run_dir = tmp_path / "live"
    env = {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "TRACKIO_DIR": str(tmp_path / "trackio"),
        "HF_HUB_OFFLINE": "1",
    }
    out = gptbench(
        "run",
        "shakespeare-char",
        "--headless",
        "--run-dir",
        str(run_dir),
        "--name",
        "sink test",
        "--tag",
        "ci",
        *sets([*TINY, "log.tensorboard=true", "log.wandb=gptbench-tests", "log.trackio=gptbench-tests"]),
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning" not in out.stderr
    losses = [e["loss"] for e in read_events(run_dir) if e["event"] == "step"]

    scalars = wait_for(
        lambda: (s := tensorboard_scalars(run_dir / "tensorboard")).get("val/loss") and len(s["val/loss"]) == 2 and s
    )
    assert [v for _, v in scalars["train/loss"]] == pytest.approx(losses, rel=1e-6)

    db = tmp_path / "trackio" / "gptbench-tests.db"

    def trackio_rows():
        if not db.exists():
            return None
        with sqlite3.connect(db) as conn:
            rows = conn.execute("select run_name, step, metrics from metrics order by step").fetchall()
        return rows if len(rows) == 6 else None  # 4 step events, 2 evals

    rows = wait_for(trackio_rows)
    assert {name for name, _, _ in rows} == {"sink test"} and [step for _, step, _ in rows] == [5, 10, 10, 15, 20, 20]
    assert (
        sum(b"train/loss" in bytes(m) for _, _, m in rows) == 4
        and sum(b"val/loss" in bytes(m) for _, _, m in rows) == 2
    )

    # wandb's offline run: its records hold our metric names, the run's name and tags (read back by bytes:
    # wandb ships no reader for the .wandb file)
    def wandb_file():
        files = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
        return files and (run_dir / "metric_sinks.log").exists() and files[0]

    record = wait_for(wandb_file).read_bytes()
    for word in (b"train/loss", b"val/loss", b"sink test", b"ci", b"gptbench-tests"):
        assert word in record


def test_a_failing_sink_warns_once_and_training_completes(tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "tensorboard").write_text("a file where the sink wants its folder")
    out = train(run_dir, "log.tensorboard=true")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.count("warning: log.tensorboard stopped") == 1 and "training goes on" in out.stderr
    finished = [e for e in read_events(run_dir) if e["event"] == "run_finished"]
    assert finished and finished[0]["reason"] == "completed" and finished[0]["step"] == 20


def test_a_sink_whose_package_is_missing_is_refused_before_training(monkeypatch):
    import importlib.util

    from workbench import presets
    from workbench.config import ConfigError

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    with pytest.raises(ConfigError) as err:
        presets.resolve(presets.load("addition"), ["log.wandb=my-project"])
    assert (
        "log.wandb needs the wandb package" in err.value.message and 'pip install "gptbench[wandb]"' in err.value.hint
    )
