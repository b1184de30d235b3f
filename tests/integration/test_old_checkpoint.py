"""A checkpoint written by an earlier gptbench still resumes exactly.

tests/fixtures/checkpoints/resume-from-c77863a holds a run as c77863a left it (before
the TrainState refactor) at step 20 of 30: weights, AdamW moments, RNG with
dropout on, the data position, a cosine decay anchored at step 10 (the run was
extended from 20 steps), the clock. The same code resumed it to step 30;
expected_losses.json holds those losses (tests/fixtures/record_old_checkpoint.py).
Today's code must continue the same way. The tolerance admits rounding alone (a
loss kernel that sums in another order); a part not restored (RNG, schedule,
data position, optimizer) moves the losses by orders of magnitude more.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from command_line import gptbench

from workbench.runs import read_events

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints" / "resume-from-c77863a"


def test_a_checkpoint_from_before_the_refactor_resumes_exactly(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    out = gptbench("run", "--headless", "--resume", str(run_dir))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resumed at step 20" in out.stdout
    events = read_events(run_dir)
    resumed = {str(e["step"]): e["loss"] for e in events if e["event"] == "step" and e["step"] > 20}
    expected = json.loads((FIXTURE / "expected_losses.json").read_text())
    assert resumed == pytest.approx(expected, rel=1e-5, abs=0)
    finished = [e for e in events if e["event"] == "run_finished"][-1]
    assert finished["reason"] == "completed" and finished["step"] == 30
