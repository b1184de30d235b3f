"""The trainer honours requests now, and nothing a user does hurts the run directory.

Real trainer subprocesses on tiny models: stops that land between micro-steps
and eval batches, mid-step checkpoints that resume exactly, resumes refused
without a byte written, runs extended with a continuous schedule, checkpoint
writes that fail on a real OS limit, live samples that stream while training
goes on.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from command_line import TINY_CHAR, gptbench, of_kind, sets, train_tiny

from workbench.engine.cpu_threads import busy_engine_processes
from workbench.launcher import EngineProcess, trainer_command
from workbench.runs import read_events


class LiveTrainer:
    """A trainer subprocess whose events we can wait on."""

    def __init__(self, run_dir, preset, overrides, resume=False):
        self.seen: list[dict] = []
        argv = trainer_command(preset, run_dir, overrides, resume=resume)
        self.process = EngineProcess(argv, run_dir, on_event=self.seen.append, detach=True).start()

    def wait_for(self, pred, what, timeout=120.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            hits = [e for e in list(self.seen) if pred(e)]
            if hits:
                return hits[-1]
            assert self.process.poll() is None, (
                f"trainer exited while waiting for {what}: {list(self.process.stderr_tail)}"
            )
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def send(self, cmd, **fields):
        self.process.send(cmd, **fields)


def losses(run_dir) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in of_kind(read_events(run_dir), "step")}


# A step of many micro-steps (grad_accum=96 of one sequence each), with dropout:
# stops land mid-step, and exactness needs the RNG of the step's start.
LONG_STEP = [
    "model.dropout=0.1",
    "train.batch_size=1",
    "train.tokens_per_step=3072",
    "train.log_every=1",
    "train.eval_every=1000",
    "train.max_steps=3",
    "train.min_lr=3e-3",
]


def test_stop_mid_accumulation_keeps_the_last_step_and_resumes_exactly(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_tiny(straight, LONG_STEP)

    # a progress event at every boundary between micro-steps: they count how far the step got
    live = LiveTrainer(split, "shakespeare-char", TINY_CHAR + LONG_STEP + ["train.progress_every_s=1e-9"])
    try:
        live.wait_for(lambda e: e["event"] == "step", "step 1")
        sent = time.time()
        live.send("stop")
        finished = live.wait_for(lambda e: e["event"] == "run_finished", "run_finished")
        assert live.process.wait(timeout=60) == 130
    finally:
        live.process.kill()
    assert finished["reason"] == "stopped" and finished["step"] in (1, 2)
    # Landed between micro-steps, whatever this machine's speed: the one running when the stop came
    # and maybe one more (the trainer's clock and ours are the same clock), not the rest of 96.
    after = [e for e in live.seen if e["event"] == "progress" and e["t"] > sent + 0.0005]  # t: ms
    assert len(after) <= 2, [(e["step"], e["done"]) for e in after]
    assert any(e["event"] == "progress" for e in live.seen)  # they were reported: the count can fail
    assert torch.load(split / "last.pt", weights_only=True)["step"] == finished["step"]

    out = gptbench("run", "--headless", "--resume", str(split))
    assert out.returncode == 0, out.stdout + out.stderr
    assert losses(split) == losses(straight)
    a = torch.load(straight / "last.pt", weights_only=True)["model"]
    b = torch.load(split / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_taken_mid_step_resumes_exactly_after_kill_9(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_tiny(straight, LONG_STEP)

    live = LiveTrainer(split, "shakespeare-char", TINY_CHAR + LONG_STEP)
    try:
        live.wait_for(lambda e: e["event"] == "step", "step 1")
        live.send("pause")  # lands between two micro-steps of step 2
        live.wait_for(lambda e: e.get("state") == "paused", "paused")
        live.send("checkpoint")
        saved = live.wait_for(lambda e: e["event"] == "checkpoint", "a checkpoint")
        os.killpg(live.process.pid, signal.SIGKILL)
        live.process.wait(timeout=30)
    finally:
        live.process.kill()
    assert saved["step"] >= 1  # the last completed step, not a half step
    out = gptbench("run", "--headless", "--resume", str(split))
    assert out.returncode == 0, out.stdout + out.stderr
    assert {s: v for s, v in losses(split).items() if s > saved["step"]} == {
        s: v for s, v in losses(straight).items() if s > saved["step"]
    }
    a = torch.load(straight / "last.pt", weights_only=True)["model"]
    b = torch.load(split / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stop_during_a_long_eval_lands_between_eval_batches(tmp_path):
    run_dir = tmp_path / "eval"
    live = LiveTrainer(
        run_dir,
        "shakespeare-char",
        TINY_CHAR + ["train.max_steps=100", "train.eval_every=10", "train.eval_steps=1000000"],
    )
    try:
        live.wait_for(lambda e: e.get("state") == "evaluating", "an eval")
        time.sleep(0.5)
        live.send("stop")
        # a million eval batches would take many minutes: finishing within this wait is the stop's doing
        finished = live.wait_for(lambda e: e["event"] == "run_finished", "run_finished", timeout=60)
        assert live.process.wait(timeout=60) == 130
    finally:
        live.process.kill()
    assert finished["reason"] == "stopped" and finished["step"] == 10
    assert not of_kind(read_events(run_dir), "eval")  # the unfinished eval reports nothing
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == 10


def test_sigterm_stops_gracefully(tmp_path):
    run_dir = tmp_path / "term"
    live = LiveTrainer(run_dir, "shakespeare-char", TINY_CHAR + LONG_STEP + ["train.max_steps=1000"])
    try:
        live.wait_for(lambda e: e["event"] == "step", "step 1")
        os.kill(live.process.pid, signal.SIGTERM)
        assert live.process.wait(timeout=60) == 130
    finally:
        live.process.kill()
    finished = of_kind(read_events(run_dir), "run_finished")[-1]
    assert finished["reason"] == "stopped" and (run_dir / "last.pt").exists()


# ------------------------------------------------------------ live samples


def test_a_live_sample_streams_while_training_goes_on_and_can_be_cancelled(tmp_path):
    run_dir = tmp_path / "talk"
    live = LiveTrainer(
        run_dir,
        "shakespeare-char",
        TINY_CHAR + ["train.max_steps=1000000", "train.log_every=20", "train.eval_every=1000000"],
    )
    try:
        live.wait_for(lambda e: e["event"] == "step", "a step")
        live.send("sample", id="s1", prompt="ROMEO:", max_new_tokens=300, temperature=1.0, top_k=0)
        live.wait_for(lambda e: e.get("state") == "sampling", "sampling state")
        done = live.wait_for(lambda e: e["event"] == "sample" and e["id"] == "s1" and e["done"], "the answer")
        assert done["tokens"] == 300 and len(done["full_text"]) >= 300
        first_piece = next(i for i, e in enumerate(live.seen) if e["event"] == "sample")
        last_piece = next(i for i, e in enumerate(live.seen) if e is done)
        steps_meanwhile = [e for e in live.seen[first_piece:last_piece] if e["event"] == "step"]
        assert steps_meanwhile, "training stopped while the sample was decoded"
        # and the trainer says so once the answer is done
        live.wait_for(lambda e: e.get("state") == "training" and e["t"] >= done["t"], "training again after the answer")

        live.send("sample", id="s2", prompt="ROMEO:", max_new_tokens=100000, temperature=1.0)
        live.wait_for(lambda e: e["event"] == "sample" and e["id"] == "s2", "the second answer starting")
        live.send("sample_cancel", id="s2")
        cancelled = live.wait_for(lambda e: e["event"] == "sample" and e["id"] == "s2" and e["done"], "the cancel")
        assert cancelled["cancelled"] is True and cancelled["tokens"] < 100000
        live.send("stop")
        assert live.process.wait(timeout=60) == 130
    finally:
        live.process.kill()


# --------------------------------------------------------- refused resumes


def _finished_run(tmp_path, extra=()):
    run_dir = tmp_path / "done"
    train_tiny(run_dir, ["train.max_steps=10", "train.eval_every=1000", *extra])
    return run_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """One finished 10-step run; tests work on copies of it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(cache_dir))
    mp.setenv("OMP_NUM_THREADS", "1")
    try:
        yield _finished_run(tmp_path_factory.mktemp("trained"))
    finally:
        mp.undo()


@pytest.fixture
def finished_run(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _snapshot(run_dir):
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    "overrides, words",
    [
        ([], ["already reached step 10", "train.max_steps=20"]),
        (["train.max_steps=20", "model.n_layer=5"], ["model.n_layer: checkpoint 1, asked 5", "train.max_steps"]),
        (
            ["train.max_steps=20", "train.batch_size=4"],
            ["took 256 tokens", "would take 128", "train.tokens_per_step=256"],
        ),
    ],
)
def test_a_refused_resume_changes_nothing(finished_run, overrides, words):
    run_dir = finished_run
    before = _snapshot(run_dir)
    out = gptbench("run", "--headless", "--resume", str(run_dir), *sets(overrides))
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "hint:" in text and "Traceback" not in text and "gptbench bug" not in text
    for word in words:
        assert word in text
    assert _snapshot(run_dir) == before  # events.jsonl byte-identical, nothing added


def test_a_dry_run_checks_a_resume_against_the_processes_asked_for(finished_run):
    """One process of micro-batch 8 took 256 tokens a step; two of them would take 512."""
    args = ["run", "--dry-run", "--resume", str(finished_run), "--set", "train.max_steps=20"]
    assert gptbench(*args).returncode == 0
    out = gptbench(*args, "--nproc-per-node", "2")
    text = out.stdout + out.stderr
    assert out.returncode == 2 and "took 256 tokens" in text and "would take 512" in text, text


def test_a_resume_whose_data_changed_its_vocabulary_changes_nothing(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question\n" * 200)
    run_dir = _finished_run(tmp_path, [f"data.path={corpus}"])
    before = _snapshot(run_dir)
    corpus.write_text("to be or not to be, that is the question? €\n" * 200)  # two new characters
    out = gptbench("run", "--headless", "--resume", str(run_dir), *sets(["train.max_steps=20"]))
    assert out.returncode == 2 and "tokenizer" in out.stdout and "hint:" in out.stdout, out.stdout + out.stderr
    assert _snapshot(run_dir) == before


def test_a_resume_without_last_pt_changes_nothing(finished_run):
    run_dir = finished_run
    (run_dir / "last.pt").unlink()
    before = _snapshot(run_dir)
    out = gptbench("run", "--headless", "--resume", str(run_dir), *sets(["train.max_steps=20"]))
    assert out.returncode == 2 and "No checkpoint" in out.stdout + out.stderr
    assert _snapshot(run_dir) == before


# ----------------------------------------------------------- run extension


def _lrs(run_dir) -> dict[int, float]:
    return {e["step"]: e["lr"] for e in of_kind(read_events(run_dir), "step")}


@pytest.mark.parametrize("schedule", ["cosine", "wsd"])
def test_an_extended_run_continues_its_schedule(tmp_path, schedule):
    """Stopped at step 10 of 20, resumed with max_steps=40: no jump back up the curve."""
    run_dir = tmp_path / schedule
    first = [
        "train.max_steps=20",
        "train.log_every=1",
        "train.warmup_steps=0",
        "train.lr=1e-2",
        "train.min_lr=1e-3",
        f"train.schedule={schedule}",
        "train.decay_fraction=0.5",
        "train.eval_every=10",
        "train.target_val_loss=100",
    ]
    train_tiny(run_dir, first)
    assert max(_lrs(run_dir)) == 10  # stopped by the (huge) target at the first eval
    out = gptbench(
        "run", "--headless", "--resume", str(run_dir), *sets(["train.max_steps=40", "train.target_val_loss=0"])
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lr = _lrs(run_dir)
    assert sorted(lr) == list(range(1, 41))
    steps = [lr[s] for s in range(1, 41)]
    assert all(b <= a + 1e-12 for a, b in zip(steps, steps[1:])), steps  # never back up the curve
    if schedule == "cosine":
        # the decay restarts from the lr the run had reached (1e-3 + 9e-3 * 0.5 = 5.5e-3) down to min_lr at 40
        assert "cosine decay continues" in out.stdout
        assert lr[11] == pytest.approx(5.5e-3)
        assert lr[40] == pytest.approx(1e-3 + 4.5e-3 * 0.5 * (1 + math.cos(math.pi * 29 / 30)))
    else:  # wsd: the stable phase simply lasts longer; the decay is the last half of the new budget
        assert all(lr[s] == 1e-2 for s in range(1, 22))
        assert lr[40] == pytest.approx(1e-3 + 9e-3 / 20)


# ------------------------------------------------------------------- disk


def _limit_file_size(limit_bytes):
    def apply():
        # The kernel refuses writes past this size (EFBIG): a full disk, for one file at a time.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


def test_a_checkpoint_write_that_fails_keeps_the_previous_one(finished_run):
    run_dir = finished_run
    good = (run_dir / "last.pt").read_bytes()
    assert len(good) > 150_000 and (run_dir / "events.jsonl").stat().st_size < 100_000
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "run",
            "--headless",
            "--resume",
            str(run_dir),
            *sets(["train.max_steps=20"]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_file_size(150_000),
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Could not write the checkpoint" in out.stdout and str(run_dir / "last.pt") in out.stdout
    assert "hint:" in out.stdout and "Traceback" not in out.stdout + out.stderr
    assert (run_dir / "last.pt").read_bytes() == good  # the previous checkpoint, intact
    assert not list(run_dir.glob(".last.pt.*"))  # no half-written temp file left behind
    error = of_kind(read_events(run_dir), "error")[-1]
    assert error["kind"] == "disk"


def test_keep_last_keeps_the_most_recent_step_checkpoints(tmp_path):
    run_dir = tmp_path / "keep"
    train_tiny(run_dir, ["train.max_steps=20", "train.ckpt_every=5", "train.keep_last=2", "train.eval_every=1000"])
    assert sorted(p.name for p in run_dir.glob("ckpt-*.pt")) == ["ckpt-15.pt", "ckpt-20.pt"]
    assert torch.load(run_dir / "ckpt-15.pt", weights_only=True)["step"] == 15


# ---------------------------------------------------------------- threads


def test_cpu_threads_are_shared_with_busy_gptbench_processes_only(finished_run, tmp_path):
    """A sampler that waits for its next prompt claims no cores; one that decodes takes its share.
    (Other gptbench processes may run beside the test: the checks name this sampler, or allow for more.)"""
    run_dir = finished_run
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    sampler = subprocess.Popen(
        [sys.executable, "-m", "workbench.engine.sampler", "--run-dir", str(run_dir), "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )

    def ask(max_new_tokens: int, until_done: bool) -> None:
        request = {"cmd": "sample", "id": "q", "prompt": "ROMEO:", "max_new_tokens": max_new_tokens}
        sampler.stdin.write(json.dumps(request) + "\n")
        sampler.stdin.flush()
        for line in sampler.stdout:
            event = json.loads(line)
            assert event["event"] == "sample", event
            if event.get("done") or not until_done:
                return

    try:
        ask(5, until_done=True)  # loaded, answered, and now waiting for the next prompt
        busy_engine_processes()  # the first look: it watches the others for a moment
        time.sleep(1.0)
        assert sampler.pid not in busy_engine_processes()  # idle for a second: no claim
        ask(10**6, until_done=False)  # decoding for minutes
        time.sleep(1.0)
        assert sampler.pid in busy_engine_processes()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "workbench.cli",
                "run",
                "shakespeare-char",
                "--headless",
                "--run-dir",
                str(tmp_path / "beside-a-busy-sampler"),
                *sets(TINY_CHAR + ["train.max_steps=2", "train.eval_steps=1"]),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        sampler.kill()
    started = of_kind(read_events(tmp_path / "beside-a-busy-sampler"), "run_started")[0]
    assert started["threads"] <= max(1, len(os.sched_getaffinity(0)) // 2)  # it shares the cores with the sampler
    pinned = of_kind(read_events(run_dir), "run_started")[0]
    assert pinned["threads"] == 1  # the test suite pins OMP_NUM_THREADS=1: an explicit count wins


def test_a_long_step_reports_its_micro_steps_and_steps_come_by_the_clock(tmp_path):
    """progress between micro-steps, step events by wall time whatever log_every says (the intervals made
    short here; by default 5 s and 30 s)."""
    run_dir = tmp_path / "run"
    slow = LONG_STEP + [
        "train.max_steps=6",
        "train.log_every=1000",
        "train.progress_every_s=0.02",
        "train.step_event_every_s=0.05",
    ]
    out = train_tiny(run_dir, slow)
    events = read_events(run_dir)
    progress = [e for e in of_kind(events, "progress") if e["stage"] == "micro_step"]
    assert progress, [e["event"] for e in events]
    tokens_per_micro = 32  # one sequence of block_size 32
    for e in progress:
        assert e["total"] == 96 and 1 <= e["done"] < 96 and 1 <= e["step"] <= 6 and e["micro_s"] > 0
        assert e["tokens_seen"] == (e["step"] - 1) * 3072 + e["done"] * tokens_per_micro
    steps = [e["step"] for e in of_kind(events, "step")]
    assert len(steps) >= 3 and steps[-1] == 6  # log_every=1000, yet steps come by the clock
    assert "micro" in out.stdout  # the headless line shows them: "step 3 · micro 7/96"


def test_a_live_sample_says_whose_weights_decoded_it(tmp_path):
    live = LiveTrainer(tmp_path / "run", "shakespeare-char", TINY_CHAR + LONG_STEP + ["train.max_steps=200"])
    try:
        live.wait_for(lambda e: e["event"] == "step" and e["step"] >= 2, "step 2")
        live.send("sample", id="w", prompt="ROMEO:", max_new_tokens=8)
        done = live.wait_for(lambda e: e["event"] == "sample" and e.get("done"), "the answer")
        # log_every=1: every piece comes from the weights of the last step logged before it
        logged = 0
        for e in list(live.seen):
            if e["event"] == "step":
                logged = e["step"]
            elif e["event"] == "sample" and e["id"] == "w":
                assert e["weights_step"] == logged, (e, logged)
        assert done["weights_step"] >= 2
        live.send("stop")
        assert live.process.wait(timeout=60) == 130
    finally:
        if live.process.poll() is None:
            live.process.kill()
