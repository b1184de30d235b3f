"""A real terminal: `gptbench` under tmux, launch addition, read the loss off the screen."""

import os
import re
import shutil
import subprocess
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")

SESSION = f"gptbench-test-{os.getpid()}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_for(pattern: str, timeout: float = 60.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, screen())
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} never showed up; the screen was:\n{screen()}")


@pytest.fixture
def terminal(tmp_path):
    # tmux starts the app in its server's environment: pass on what this test's run needs.
    env = {"GPTBENCH_RUNS": str(tmp_path / "runs"), "TERM": "xterm-256color", "OMP_NUM_THREADS": "1"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    tmux("new-session", "-d", "-s", SESSION, "-x", "80", "-y", "24", f"env {exports} gptbench")
    yield tmp_path / "runs"
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)


def test_gptbench_launches_addition_and_shows_the_loss(terminal):
    wait_for(r"l launches")
    wait_for(r"addition")
    tmux("send-keys", "-t", SESSION, "l")
    loss = wait_for(r"loss\s+(\d+\.\d+)", timeout=90)
    assert 0 < float(loss.group(1)) < 10
    wait_for(r"TRAINING")
    tmux("send-keys", "-t", SESSION, "q")
    wait_for(r"Still training")
    tmux("send-keys", "-t", SESSION, "s")  # stop (checkpoint first), then quit
    deadline = time.monotonic() + 90
    while SESSION in subprocess.run(["tmux", "ls"], capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, f"the app did not quit; the screen was:\n{screen()}"
        time.sleep(0.2)
    (run,) = terminal.iterdir()
    assert (run / "last.pt").exists()
