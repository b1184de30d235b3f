"""A headless run outlives its terminal, its pipe and its parent; Ctrl-C and SIGTERM still stop it.

Real processes and real signals throughout: the headless command under a real
pseudo-terminal (tmux) that goes away, a process group that gets SIGHUP, a
pipe into `head`, a `kill -9`. After each, the run must carry on to its end in
its run directory, and `gptbench logs -f` must follow it there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from command_line import TINY_CHAR, gptbench, of_kind, sets, train_tiny

from workbench.control import is_live, send_command
from workbench.run_files import STDERR_FILE
from workbench.runs import read_events, summarize

CLI = [sys.executable, "-m", "workbench.cli"]


def run_of(steps: int) -> list[str]:
    """Long enough to be mid-run when the test strikes, short enough to finish in seconds."""
    return TINY_CHAR + [f"train.max_steps={steps}", "train.log_every=10", "train.eval_every=200"]


RUN = run_of(200)
TIMEOUT_S = 120  # a ceiling for waiting on events, never a sleep


def wait_for_event(run_dir: Path, pred, what: str, timeout: float = TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = [e for e in read_events(run_dir) if pred(e)]
        if hits:
            return hits[-1]
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; events: {[e['event'] for e in read_events(run_dir)][-10:]}")


def a_step(run_dir: Path) -> dict:
    return wait_for_event(run_dir, lambda e: e["event"] == "step", "a step")


def finished(run_dir: Path) -> dict:
    return wait_for_event(run_dir, lambda e: e["event"] == "run_finished", "run_finished")


def trainer_pid(run_dir: Path) -> int:
    return wait_for_event(run_dir, lambda e: e["event"] == "run_started", "run_started")["pid"]


@pytest.fixture
def trainers():
    """Trainers (pids) that live in a session of their own: killed, with their group, if a test fails midway."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            group = os.getpgid(pid)
            if group != os.getpgrp():
                os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def assert_completed_after(run_dir: Path, step_at_blow: int, max_steps: int = 200) -> dict:
    """The run went on after the blow, to its last step, and left what a finished run leaves."""
    done = finished(run_dir)
    assert done["reason"] == "completed" and done["step"] == max_steps
    steps = [e["step"] for e in of_kind(read_events(run_dir), "step")]
    assert steps[-1] == max_steps and steps[-1] > step_at_blow
    assert of_kind(read_events(run_dir), "checkpoint")[-1]["step"] == max_steps and (run_dir / "last.pt").exists()
    deadline = time.monotonic() + TIMEOUT_S
    while (run_dir / "control.fifo").exists():  # it closes right after run_finished
        assert time.monotonic() < deadline, "control.fifo outlived the trainer"
        time.sleep(0.1)
    assert summarize(run_dir).status == "completed"
    return done


def test_a_hangup_of_the_terminal_leaves_the_run_training(tmp_path, trainers):
    """tmux kill-session: the pty closes and the headless command gets SIGHUP, as when SSH drops."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    run_dir = tmp_path / "hup"
    session = f"gptbench-hup-{os.getpid()}"
    command = " ".join([*CLI, "run", "shakespeare-char", "--headless", "--run-dir", str(run_dir), *sets(run_of(500))])
    env = {**os.environ, "TMUX_TMPDIR": str(tmp_path)}  # a tmux server of our own
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "20", command], env=env, check=True)
    try:
        trainers.append(trainer_pid(run_dir))
        step = a_step(run_dir)["step"]
        subprocess.run(["tmux", "kill-session", "-t", session], env=env, check=True)
    finally:
        subprocess.run(["tmux", "kill-server"], env=env, capture_output=True)

    assert is_live(run_dir)  # a new login takes it over through its control FIFO, as `attach` does
    send_command(run_dir, "pause")
    wait_for_event(run_dir, lambda e: e.get("state") == "paused", "the pause")
    send_command(run_dir, "resume")
    followed = subprocess.run([*CLI, "logs", "-f", str(run_dir)], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "completed at step 500" in followed.stdout
    assert_completed_after(run_dir, step, max_steps=500)


def test_sighup_to_the_process_group_of_a_ddp_run(tmp_path, trainers):
    """What the shell does on hangup, to torchrun too (it would stop its workers on SIGHUP)."""
    run_dir = tmp_path / "ddp"
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "addition",
            "--headless",
            "--run-dir",
            str(run_dir),
            "--nproc-per-node",
            "2",
            *sets(["train.max_steps=100", "train.log_every=5", "train.eval_every=1000", "model.n_layer=1"]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    trainers.append(trainer_pid(run_dir))
    step = a_step(run_dir)["step"]
    os.killpg(proc.pid, signal.SIGHUP)
    proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == -signal.SIGHUP  # the view is gone...
    done = assert_completed_after(run_dir, step, max_steps=100)  # ...the run is not
    assert done["ranks_in_sync"] is True


def test_killing_the_headless_command_leaves_the_run_training(tmp_path, trainers):
    run_dir = tmp_path / "kill9"
    proc = subprocess.Popen(
        [*CLI, "run", "shakespeare-char", "--headless", "--run-dir", str(run_dir), *sets(RUN)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    trainers.append(trainer_pid(run_dir))
    step = a_step(run_dir)["step"]
    proc.kill()
    proc.communicate(timeout=TIMEOUT_S)
    assert_completed_after(run_dir, step)


def test_sigterm_to_the_headless_command_stops_the_run_gracefully(tmp_path, trainers):
    run_dir = tmp_path / "term"
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "shakespeare-char",
            "--headless",
            "--run-dir",
            str(run_dir),
            *sets(TINY_CHAR + ["train.max_steps=100000"]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    trainers.append(trainer_pid(run_dir))
    a_step(run_dir)
    proc.terminate()
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 130, out + err
    done = of_kind(read_events(run_dir), "run_finished")[-1]
    assert done["reason"] == "stopped" and of_kind(read_events(run_dir), "checkpoint")[-1]["step"] == done["step"]
    assert "stopped at step" in out


def test_a_closed_pipe_ends_the_view_not_the_run(tmp_path, trainers):
    """`gptbench run ... | head -1`: more events than a pipe holds (64 KiB), and nobody reads them."""
    run_dir = tmp_path / "piped"
    many_lines = TINY_CHAR + ["train.max_steps=300", "train.log_every=1", "train.eval_every=1000"]
    command = " ".join(
        [*CLI, "run", "shakespeare-char", "--headless", "--run-dir", str(run_dir), *sets(many_lines), "| head -1"]
    )
    piped = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert piped.returncode == 0
    assert piped.stdout.startswith("gptbench shakespeare-char") and piped.stdout.count("\n") == 1
    assert "the run goes on" in piped.stderr and "Traceback" not in piped.stderr
    trainers.append(trainer_pid(run_dir))
    done = finished(run_dir)
    assert done["reason"] == "completed" and done["step"] == 300
    assert len(of_kind(read_events(run_dir), "step")) == 300


def test_the_trainers_stderr_moves_to_the_run_dir_when_nobody_reads_it(tmp_path):
    """Python raises BrokenPipeError on a write to a pipe nobody reads; the trainer's stderr must not."""
    code = (  # the worker's own set-up of its streams, then writes of every kind
        "import os, sys, traceback\n"
        "from pathlib import Path\n"
        "from workbench.engine.stderr_log import StderrOutlivingItsReader\n"
        "from workbench.engine.worker import event_stream\n"
        "events = event_stream()\n"
        f"sys.stdout = sys.stderr = StderrOutlivingItsReader(sys.stderr, Path({str(tmp_path / STDERR_FILE)!r}))\n"
        "events.write('ready\\n')\n"
        "sys.stdin.read()\n"  # returns once the test has closed our stderr's reader
        "print('a print after the reader left')\n"
        "print('a line to stderr', file=sys.stderr)\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()\n"
        "os.write(2, b'straight to fd 2\\n')\n"
        "events.write('alive\\n')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "ready\n"
    proc.stderr.close()  # the reader goes away
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    log = (tmp_path / STDERR_FILE).read_text()
    for line in ("a print after the reader left", "a line to stderr", "ZeroDivisionError", "straight to fd 2"):
        assert line in log
    assert proc.stdout.read() == "alive\n"


def test_detach_returns_at_once_and_logs_follows_the_run(tmp_path, trainers):
    run_dir = tmp_path / "detached"
    out = gptbench("run", "shakespeare-char", "--headless", "--detach", "--run-dir", str(run_dir), *sets(RUN))
    assert out.returncode == 0, out.stdout + out.stderr
    trainers.append(wait_for_event(run_dir, lambda e: e.get("state") == "starting", "the starting status")["pid"])
    assert not of_kind(read_events(run_dir), "run_finished")  # it did not wait for the training
    assert f"gptbench logs -f {run_dir}" in out.stdout and f"gptbench attach {run_dir}" in out.stdout
    assert summarize(run_dir).status == "running"  # starting up, before its control FIFO exists

    followed = gptbench("logs", "-f", str(run_dir), timeout=TIMEOUT_S)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    lines = followed.stdout.splitlines()
    assert lines[0].startswith("gptbench shakespeare-char") and "completed at step 200" in lines[-1]
    assert sum(line.startswith("step ") for line in lines) == 20
    assert (run_dir / "last.pt").exists() and (run_dir / STDERR_FILE).exists()

    # a refused resume says why, here: nothing of it goes into the run
    before = (run_dir / "events.jsonl").read_bytes()
    refused = gptbench("run", "--headless", "--detach", "--resume", str(run_dir))
    assert refused.returncode == 2 and "error:" in refused.stdout and "hint:" in refused.stdout
    assert (run_dir / "events.jsonl").read_bytes() == before

    # a detached resume waits for the resumed trainer's first event, so logs -f cannot mistake the old ending for it
    more = gptbench("run", "--headless", "--detach", "--resume", str(run_dir), *sets(["train.max_steps=300"]))
    assert more.returncode == 0, more.stdout + more.stderr
    followed = gptbench("logs", "-f", str(run_dir), timeout=TIMEOUT_S)
    assert followed.returncode == 0 and "resumed at step 200" in followed.stdout
    assert followed.stdout.splitlines()[-1].startswith("completed at step 300")


def test_logs_prints_what_the_headless_run_printed(tmp_path):
    run_dir = tmp_path / "same"
    ran = train_tiny(run_dir, ["train.max_steps=40", "train.eval_every=20"])
    for args in (["logs", str(run_dir)], ["logs", "-f", str(run_dir)]):
        logged = gptbench(*args)
        assert logged.returncode == 0 and logged.stdout == ran.stdout


def test_logs_follow_ends_when_the_trainer_is_killed(tmp_path, trainers):
    run_dir = tmp_path / "killed"
    out = gptbench(
        "run",
        "shakespeare-char",
        "--headless",
        "--detach",
        "--run-dir",
        str(run_dir),
        *sets(TINY_CHAR + ["train.max_steps=100000"]),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    pid = trainer_pid(run_dir)
    trainers.append(pid)
    a_step(run_dir)
    follower = subprocess.Popen(
        [*CLI, "logs", "-f", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    os.kill(pid, signal.SIGKILL)
    out, err = follower.communicate(timeout=TIMEOUT_S)
    assert follower.returncode == 1, out + err
    assert "the trainer is gone without finishing" in out and f"--resume {run_dir}" in out
    assert summarize(run_dir).status == "crashed"
