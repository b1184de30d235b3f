"""Damaged inputs never take a reader down: each bad item is skipped or flagged in one line.

The damage is what really happens to a run directory: lines cut short by a
killed trainer or a full disk, bytes that are not text, a file without its
beginning, a checkpoint copied halfway, a preset edited by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from command_line import gptbench, of_kind, sets, train_tiny

from workbench.events import encode, make
from workbench.runs import read_events, summarize

FIXTURES = Path(__file__).parents[1] / "fixtures" / "runs"
DAMAGE = [
    b"garbage that is not JSON\n",
    b'{"event":"step","step":5,"lo\n',  # cut short, then the next write went on after it
    b"\xff\xfe not UTF-8 \x80\n",
    b'{"event":"step"}\n',  # an event without its fields
]


@pytest.fixture(autouse=True)
def wide_output(monkeypatch):
    """Rich wraps messages to the terminal's width (80 when piped): keep each on one line to read it back."""
    monkeypatch.setenv("COLUMNS", "1000")


def damaged_copy(tmp_path: Path, name: str = "addition-completed") -> Path:
    """The recorded run with every kind of damage spliced in after its third line."""
    run_dir = tmp_path / "runs" / name
    shutil.copytree(FIXTURES / name, run_dir)
    lines = (run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)
    (run_dir / "events.jsonl").write_bytes(b"".join(lines[:3] + DAMAGE + lines[3:]))
    return run_dir


def test_damaged_event_lines_are_skipped_and_counted(tmp_path):
    run_dir = damaged_copy(tmp_path)
    intact = FIXTURES / "addition-completed"
    assert read_events(run_dir) == read_events(intact)
    assert summarize(run_dir).damaged_lines == len(DAMAGE)

    listed = gptbench("runs", str(run_dir.parent))
    assert listed.returncode == 0, listed.stderr
    assert "completed" in listed.stdout and "300/300" in listed.stdout
    assert f"skipped {len(DAMAGE)} damaged lines" in listed.stderr and listed.stderr.count("\n") <= 2

    for follow in ([], ["-f"]):  # a finished run: -f ends at its run_finished
        logged = gptbench("logs", *follow, str(run_dir))
        assert logged.returncode == 0, logged.stderr
        assert logged.stdout == gptbench("logs", str(intact)).stdout
        assert f"skipped {len(DAMAGE)} damaged lines" in logged.stderr and "Traceback" not in logged.stderr


def test_an_event_of_the_wrong_shape_is_skipped(tmp_path):
    run_dir = damaged_copy(tmp_path)
    with open(run_dir / "events.jsonl", "a") as f:
        f.write('{"event":"eval","t":1,"step":"three hundred","val_loss":"low","metrics":[1]}\n')
    s = summarize(run_dir)
    assert (s.status, s.step, s.damaged_lines) == ("completed", 300, len(DAMAGE) + 1)
    logged = gptbench("logs", str(run_dir))
    assert logged.returncode == 0 and f"skipped {len(DAMAGE) + 1} damaged lines" in logged.stderr


def test_an_events_file_without_its_run_started(tmp_path):
    """The trainer was killed while starting up: a `starting` status naming a pid that is gone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_dir = tmp_path / "runs" / "never-started"
    run_dir.mkdir(parents=True)
    shutil.copy(FIXTURES / "addition-completed" / "config.json", run_dir)
    (run_dir / "events.jsonl").write_text(encode(make("status", state="starting", pid=gone.pid)) + "\n")

    assert (summarize(run_dir).status, summarize(run_dir).preset) == ("crashed", "addition")
    listed = gptbench("runs", str(run_dir.parent))
    assert listed.returncode == 0 and "crashed" in listed.stdout
    # waiting for a run_started that cannot come would never end: the call would time out
    followed = gptbench("logs", "-f", str(run_dir), timeout=120)
    assert followed.returncode == 1 and "the trainer is gone without finishing" in followed.stdout

    (run_dir / "events.jsonl").write_text("")  # nothing at all
    assert gptbench("logs", "-f", str(run_dir)).returncode == 1
    assert summarize(run_dir).status == "empty"


def test_a_torn_line_left_by_a_killed_trainer_stays_one_damaged_line(tmp_path):
    """A resumed trainer ends the torn line first, so its own events are not glued onto it."""
    run_dir = tmp_path / "torn"
    train_tiny(run_dir, ["train.eval_every=1000", "train.max_steps=10"])
    with open(run_dir / "events.jsonl", "a") as f:
        f.write('{"event":"step","step":11,"loss":2.')  # killed mid-write
    assert summarize(run_dir).damaged_lines == 0  # could be a live writer's half line: not counted yet

    again = gptbench("run", "--headless", "--resume", str(run_dir), *sets(["train.max_steps=20"]))
    assert again.returncode == 0, again.stdout + again.stderr
    s = summarize(run_dir)
    assert (s.status, s.step, s.damaged_lines) == ("completed", 20, 1)
    assert of_kind(read_events(run_dir), "run_started")[-1]["resumed_from"] == 10


def test_a_checkpoint_cut_in_half(tmp_path):
    run_dir = tmp_path / "ckpt"
    out = train_tiny(run_dir, ["train.max_steps=10", "train.eval_every=10"])
    best = run_dir / "best.pt"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])

    bad = gptbench("sample", str(run_dir), "--prompt", "ROMEO:", "--max-new-tokens", "5")
    assert bad.returncode == 2
    assert "best.pt could not be read" in bad.stderr and "hint:" in bad.stderr and "Traceback" not in bad.stderr
    good = gptbench("sample", str(run_dir), "--prompt", "ROMEO:", "--max-new-tokens", "5", "--checkpoint", "last")
    assert good.returncode == 0 and good.stdout.startswith("ROMEO:")
    # the readers of the run directory do not read checkpoints: unaffected
    assert gptbench("logs", str(run_dir)).stdout == out.stdout
    assert "completed" in gptbench("runs", str(tmp_path)).stdout

    last = run_dir / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    resumed = gptbench("run", "--headless", "--resume", str(run_dir), *sets(["train.max_steps=20"]))
    assert resumed.returncode == 2
    said = resumed.stdout + resumed.stderr
    assert "last.pt could not be read" in said and "hint:" in said and "Traceback" not in said


def test_malformed_user_presets_are_listed_as_skipped(tmp_path, monkeypatch):
    user = tmp_path / "presets"
    user.mkdir()
    (user / "unclosed.toml").write_text('description = "broken"\n[model\nn_layer = 2\n')
    (user / "typo.toml").write_text("[train]\nlrr = 1e-3\n")
    (user / "binary.toml").write_bytes(b"\xff\xfe\x00")
    (user / "tiny.toml").write_text(
        'description = "mine"\n[model]\nn_layer = 1\n[data]\nkind = "addition"\ntokenizer = "digits"\n'
    )
    monkeypatch.setenv("GPTBENCH_PRESETS", str(user))

    listed = gptbench("presets")
    assert listed.returncode == 0, listed.stderr
    for name in ("addition", "shakespeare-char", "tiny"):
        assert name in listed.stdout
    skipped = [line for line in listed.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 3 and "Traceback" not in listed.stderr
    for name in ("unclosed.toml", "typo.toml", "binary.toml"):
        assert name in listed.stderr

    refused = gptbench("run", "unclosed", "--headless", "--run-dir", str(tmp_path / "r"))
    assert refused.returncode == 2 and "unclosed.toml" in refused.stderr and "hint:" in refused.stderr


@pytest.mark.parametrize("what", ["missing", "a file"])
def test_runs_of_a_directory_that_is_not_one(tmp_path, what):
    root = tmp_path / "runs"
    if what == "a file":
        root.write_text("")
    out = gptbench("runs", str(root))
    assert out.returncode == 2 and str(root) in out.stderr and "hint:" in out.stderr and "Traceback" not in out.stderr


def test_attach_to_a_damaged_run_flags_it_and_opens_the_app(tmp_path):
    """Over a real terminal: the note comes before the app and stays when it quits."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    run_dir = damaged_copy(tmp_path)
    session = f"gptbench-attach-{os.getpid()}"
    env = {**os.environ, "TMUX_TMPDIR": str(tmp_path), "TERM": "xterm-256color"}
    env.pop("COLUMNS")  # the app takes the pane's size

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", *args], env=env, capture_output=True, text=True, check=True).stdout

    def wait_for(text: str) -> str:
        deadline = time.monotonic() + 60
        while text not in (screen := tmux("capture-pane", "-p", "-t", session)):
            assert time.monotonic() < deadline, f"{text!r} never showed up; the screen was:\n{screen}"
            time.sleep(0.2)
        return screen

    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "100",
        "-y",
        "30",
        f"{sys.executable} -m workbench.cli attach {run_dir}; echo attach exited $?; sleep 60",
    )
    try:
        screen = wait_for("step 300/300")
        assert "COMPLETED" in screen
        tmux("send-keys", "-t", session, "q")
        screen = wait_for("attach exited")
        assert "attach exited 0" in screen and f"skipped {len(DAMAGE)} damaged lines" in screen
    finally:
        subprocess.run(["tmux", "kill-server"], env=env, capture_output=True)
