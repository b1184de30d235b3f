"""`gptbench run --headless` end to end: real subprocesses, real training on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from command_line import TINY_CHAR, gptbench, of_kind, sets, train_tiny

from workbench.launcher import EngineProcess, trainer_command
from workbench.runs import read_events, summarize


def test_addition_preset_reaches_100_percent(tmp_path):
    """The acceptance run: the preset's own defaults, on CPU."""
    run_dir = tmp_path / "add"
    start = time.time()
    out = gptbench("run", "addition", "--headless", "--run-dir", str(run_dir), timeout=300)
    wall = time.time() - start
    assert out.returncode == 0, out.stdout + out.stderr
    finished = of_kind(read_events(run_dir), "run_finished")[-1]
    assert finished["reason"] == "completed"
    assert finished["metrics"]["accuracy"] == 1.0 and finished["metrics"]["accuracy_all"] == 1.0
    # what a person sees: header, step lines, eval lines, the summary
    assert "gptbench addition" in out.stdout and "accuracy_all 1.0000" in out.stdout
    assert out.stdout.count("step ") >= 10 and "completed at step 1000" in out.stdout
    assert "\x1b[" not in out.stdout  # piped: plain lines, no terminal styling
    print(f"addition preset: {wall:.1f}s wall")


def test_shakespeare_char_trains_samples_and_rejects_unknown_characters(tmp_path):
    run_dir = tmp_path / "shk"
    train_tiny(run_dir, ["train.max_steps=40", "train.eval_every=20"])
    events = read_events(run_dir)
    started = of_kind(events, "run_started")[0]
    assert started["config"]["profile"] == "cpu" and started["device"] == "cpu" and started["compile"] is False
    assert started["config"]["model"]["vocab_size"] == 65
    losses = [e["loss"] for e in of_kind(events, "step")]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.4  # it learns
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.json",
        "meta.json",
        "events.jsonl",
        "tokenizer.json",
        "last.pt",
        "best.pt",
    }
    assert not (run_dir / "control.fifo").exists()  # gone once the trainer ends
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["seed"] == 1337 and meta["torch"]

    sampled = gptbench("sample", str(run_dir), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "1")
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("ROMEO:") and len(sampled.stdout) > 30

    bad = gptbench("sample", str(run_dir), "--prompt", "héllo ☃")
    assert bad.returncode == 2
    assert "'é'" in bad.stderr and "'☃'" in bad.stderr and "hint:" in bad.stderr and "Traceback" not in bad.stderr


def test_gpt2_preset_runs_two_steps_on_cpu(tmp_path):
    run_dir = tmp_path / "gpt2"
    tiny = [
        "profile=shakespeare",
        "train.max_steps=2",
        "model.n_layer=2",
        "model.n_head=2",
        "model.n_embd=64",
        "model.block_size=64",
        "train.batch_size=2",
        "train.tokens_per_step=256",
        "train.eval_steps=1",
        "train.log_every=1",
    ]
    out = gptbench("run", "gpt2-124m", "--headless", "--json", "--run-dir", str(run_dir), *sets(tiny), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    printed = [json.loads(line) for line in out.stdout.splitlines()]
    assert printed == read_events(run_dir)  # --json prints exactly the event log
    started = of_kind(printed, "run_started")[0]
    assert (
        started["tokens_per_step"] == 256
        and started["grad_accum"] == 2
        and started["config"]["model"]["vocab_size"] == 50257
    )
    assert [e["step"] for e in of_kind(printed, "step")] == [1, 2]


def test_resume_continues_exactly(tmp_path):
    """30 steps + resume to 60 == 60 steps straight: same losses, same weights (dropout on)."""
    import torch

    # a constant learning rate, so the schedule does not depend on max_steps
    common = ["model.dropout=0.1", "train.min_lr=3e-3", "train.eval_every=1000", "train.log_every=5"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_tiny(straight, common + ["train.max_steps=60"])
    train_tiny(split, common + ["train.max_steps=30"])
    again = gptbench("run", "--headless", "--resume", str(split), *sets(["train.max_steps=60"]))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed at step 30" in again.stdout

    def losses(run_dir):
        return {e["step"]: e["loss"] for e in of_kind(read_events(run_dir), "step")}

    assert losses(split) == losses(straight)
    a = torch.load(straight / "last.pt", weights_only=True)["model"]
    b = torch.load(split / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_checkpoints_and_exits_130(tmp_path):
    run_dir = tmp_path / "stopme"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
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
        start_new_session=True,
    )
    deadline = time.time() + 60
    while not of_kind(read_events(run_dir), "step"):
        assert time.time() < deadline and proc.poll() is None, "no step event"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    finished = of_kind(read_events(run_dir), "run_finished")[-1]
    assert finished["reason"] == "stopped" and finished["step"] > 0
    assert of_kind(read_events(run_dir), "checkpoint")[-1]["step"] == finished["step"]
    assert (run_dir / "last.pt").exists() and summarize(run_dir).status == "stopped"
    assert "stopped at step" in out


def test_live_commands_pause_sample_checkpoint_stop(tmp_path):
    """The command channel the app uses, against a real trainer."""
    run_dir = tmp_path / "live"
    seen: list[dict] = []
    argv = trainer_command("addition", run_dir, ["train.max_steps=100000", "train.log_every=5"])
    trainer = EngineProcess(argv, run_dir, on_event=seen.append).start()

    def wait_for(pred, what, timeout=60.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            hits = [e for e in list(seen) if pred(e)]
            if hits:
                return hits[-1]
            assert trainer.poll() is None, f"trainer exited while waiting for {what}: {list(trainer.stderr_tail)}"
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        wait_for(lambda e: e["event"] == "step", "a step")
        trainer.send("pause")
        paused_at = wait_for(lambda e: e.get("state") == "paused", "paused")["step"]
        trainer.send("sample", id="q1", prompt="23+58")
        answer = wait_for(lambda e: e["event"] == "sample" and e["id"] == "q1" and e["done"], "an answer")
        assert answer["expected"] == 81 and isinstance(answer["answer"], int)
        trainer.send("sample", id="q2", prompt="twenty+one")
        bad = wait_for(lambda e: e["event"] == "error" and e.get("id") == "q2", "a prompt error")
        assert bad["kind"] == "prompt" and bad["hint"]
        trainer.send("checkpoint")
        wait_for(lambda e: e["event"] == "checkpoint" and e["step"] == paused_at, "a checkpoint while paused")
        time.sleep(0.5)
        assert max(e["step"] for e in seen if e["event"] == "step") <= paused_at  # really paused
        trainer.send("resume")
        wait_for(lambda e: e["event"] == "step" and e["step"] > paused_at, "training again")
        trainer.send("stop")
        assert trainer.wait(timeout=60) == 130
    finally:
        trainer.kill()
    assert seen[-2]["event"] == "run_finished" and seen[-2]["reason"] == "stopped"


def test_two_process_ddp_matches_one_process(tmp_path):
    """torchrun, 2 CPU processes with gloo == 1 process with the same global batch."""
    common = [
        "model.n_layer=2",
        "model.n_head=2",
        "model.n_embd=32",
        "train.batch_size=16",
        "train.tokens_per_step=192",
        "train.max_steps=20",
        "train.log_every=5",
        "train.eval_every=1000",
        "train.warmup_steps=0",
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = gptbench("run", "addition", "--headless", "--run-dir", str(one), *sets(common))
    r2 = gptbench(
        "run", "addition", "--headless", "--run-dir", str(two), "--nproc-per-node", "2", *sets(common), timeout=300
    )
    assert r1.returncode == 0, r1.stdout + r1.stderr
    assert r2.returncode == 0, r2.stdout + r2.stderr
    e1, e2 = read_events(one), read_events(two)
    s1, s2 = of_kind(e1, "run_started")[0], of_kind(e2, "run_started")[0]
    assert (s1["world_size"], s1["grad_accum"]) == (1, 2) and (s2["world_size"], s2["grad_accum"]) == (2, 1)
    l1 = [e["loss"] for e in of_kind(e1, "step")]
    l2 = [e["loss"] for e in of_kind(e2, "step")]
    assert len(l1) == len(l2) == 4
    assert max(abs(a - b) for a, b in zip(l1, l2)) < 1e-5
    finished = of_kind(e2, "run_finished")[-1]
    assert finished["ranks_in_sync"] is True  # both ranks hold identical weights


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "shakespear", "--headless"], ["Unknown preset", "shakespeare-char"]),
        (["run", "addition", "--headless", "--set", "train.bach_size=3"], ["train.bach_size", "train.batch_size"]),
        (["run", "addition", "--headless", "--set", "model.n_head=5"], ["not divisible", "n_head=5"]),
        (
            ["run", "shakespeare-char", "--headless", "--set", "data.path=/no/such/file.txt"],
            ["/no/such/file.txt", "data.path"],
        ),
        (["run", "shakespeare-char", "--headless", "--set", "model.block_size=5000000"], ["block_size", "5000000"]),
        (["run", "--headless", "--resume", "/tmp"], ["not a run directory"]),
        (["sample", "/nonexistent/run", "--prompt", "x"], ["does not exist"]),
    ],
)
def test_bad_input_gets_one_sentence_and_a_hint(args, words, tmp_path):
    out = (
        gptbench(*args, "--run-dir", str(tmp_path / "r"))
        if args[0] == "run" and "--resume" not in args
        else gptbench(*args)
    )
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "hint:" in text and "Traceback" not in text
    for word in words:
        assert word in text


def test_nan_keeps_the_last_good_checkpoint(tmp_path):
    import torch

    run_dir = tmp_path / "nan"
    train_tiny(run_dir, ["train.eval_every=1000", "train.max_steps=10"])
    good = torch.load(run_dir / "last.pt", weights_only=True)
    out = gptbench(
        "run",
        "--headless",
        "--resume",
        str(run_dir),
        *sets(["train.max_steps=40", "train.lr=1e30", "train.min_lr=1e30", "train.grad_clip=0"]),
    )
    assert out.returncode == 1 and "NaN" in out.stdout and "hint:" in out.stdout
    after = torch.load(run_dir / "last.pt", weights_only=True)
    assert after["step"] == good["step"] == 10
    assert all(torch.equal(after["model"][k], good["model"][k]) for k in good["model"])
