"""The `system` event: what the collector reads, when it speaks, and that a real trainer sends it."""

import os
import subprocess
import sys

import pytest

from workbench import system_monitor
from workbench.events import EVENT_FIELDS, encode, make
from workbench.runs import read_events
from workbench.system_monitor import SystemMonitor, visible_gpu_indices


def test_a_reading_is_a_valid_system_event():
    fields = SystemMonitor().read()
    event = make("system", **fields)  # every required field is there
    assert set(EVENT_FIELDS["system"]) <= set(fields)
    assert 0 <= fields["cpu_percent"] <= 100 and fields["cpu_count"] >= 1
    assert 0 < fields["rss_gb"] < fields["ram_total_gb"] and 0 < fields["ram_used_gb"] <= fields["ram_total_gb"]
    assert encode(event)
    if not fields["gpus"]:
        assert fields["gpu_note"]  # the pane says why there are no GPU rows


def test_it_speaks_every_interval_and_only_when_something_changed(monkeypatch):
    now = [100.0]
    monitor = SystemMonitor(interval_s=5.0, clock=lambda: now[0])
    reading = {"cpu_percent": 50}
    monkeypatch.setattr(monitor, "read", lambda: dict(reading))
    assert monitor.poll() == {"cpu_percent": 50}  # the first poll answers at once
    now[0] += 1
    assert monitor.poll() is None  # not due
    now[0] += 5
    assert monitor.poll() is None  # due, but nothing changed
    reading["cpu_percent"] = 97
    assert monitor.poll() is None  # changed, but not due again yet
    now[0] += 5
    assert monitor.poll() == {"cpu_percent": 97}


def test_without_nvidia_ml_py_the_gpu_rows_say_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    fields = SystemMonitor().read()
    assert fields["gpus"] == [] and fields["gpu_note"] == "nvidia-ml-py is not installed"


@pytest.mark.skipif(os.path.exists("/proc/driver/nvidia/version"), reason="this machine has an NVIDIA driver")
def test_without_a_driver_the_gpu_rows_say_so():
    pytest.importorskip("pynvml")
    fields = SystemMonitor().read()
    assert fields["gpus"] == [] and fields["gpu_note"].startswith("no NVIDIA driver")


def test_cuda_visible_devices_picks_the_gpus(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpu_indices(4) == [0, 1, 2, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0,7")
    assert visible_gpu_indices(4) == [2, 0]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpu_indices(4) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f2c")
    assert visible_gpu_indices(2) == [0, 1]


def test_a_trainer_sends_system_events(tmp_path):
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "workbench.engine.worker", "--run-dir", str(run_dir), "--preset", "addition"]
    for override in ("train.max_steps=20", "train.eval_every=20", "train.log_every=5"):
        argv += ["--set", override]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(argv, check=True, timeout=120, env=env, stdout=subprocess.DEVNULL)
    events = read_events(run_dir)
    system = [e for e in events if e["event"] == "system"]
    assert system, "no system event"
    assert system[0]["rss_gb"] > 0 and system[0]["cpu_count"] >= 1
    span = events[-1]["t"] - events[0]["t"]
    assert len(system) <= span / system_monitor.INTERVAL_S + 1  # seconds apart, not one per logged step
