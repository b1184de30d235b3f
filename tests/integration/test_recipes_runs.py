"""recipe=modern and train.optimizer=muon through the real trainer: exact resume, DDP with gloo,
fp16 loss scaling, and the gpt2-124m preset trained, resumed and sampled with both recipes."""

from __future__ import annotations

import pytest
import torch
from command_line import TINY_CHAR, gptbench, of_kind, sets, train_tiny

from workbench.runs import read_events

MODERN = ["recipe=modern", "train.threads=1"]  # one thread: bit-exact sums, run after run


def losses(run_dir) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in of_kind(read_events(run_dir), "step")}


def run(*args, timeout=300):
    out = gptbench(*args, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.mark.parametrize("recipe", ["classic", "modern"])
def test_gpt2_124m_trains_resumes_exactly_and_samples(tmp_path, recipe):
    """The gpt2-124m preset (shakespeare profile, GPT-2 tokenizer), shrunk to seconds: 30 steps + resume to
    40 == 40 steps straight, then a sample from the checkpoint."""
    tiny = [
        "profile=shakespeare",
        f"recipe={recipe}",
        "model.n_layer=1",
        "model.n_head=2",
        "model.n_embd=32",
        "model.block_size=32",
        "model.dropout=0.1",
        "train.batch_size=4",
        "train.tokens_per_step=256",
        "train.warmup_steps=0",
        "train.lr=3e-3",
        "train.min_lr=3e-3",  # a constant rate: the schedule does not depend on max_steps
        "train.eval_every=1000",
        "train.eval_steps=1",
        "train.log_every=5",
        "train.threads=1",
    ]
    straight, split = tmp_path / "straight", tmp_path / "split"
    run("run", "gpt2-124m", "--headless", "--run-dir", str(straight), *sets(tiny + ["train.max_steps=40"]))
    run("run", "gpt2-124m", "--headless", "--run-dir", str(split), *sets(tiny + ["train.max_steps=20"]))
    again = run("run", "--headless", "--resume", str(split), *sets(["train.max_steps=40"]))
    assert "resumed at step 20" in again.stdout
    started = of_kind(read_events(split), "run_started")[0]
    assert started["optimizer"] == ("adamw" if recipe == "classic" else "muon (4 matrices) + adamw (9 tensors)")
    assert losses(split) == losses(straight)
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(split / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    sampled = run("sample", str(split), "--checkpoint", "last", "--prompt", "ROMEO:", "--max-new-tokens", "8")
    assert sampled.stdout.strip()


def test_muon_under_ddp_matches_one_process_and_ranks_stay_in_sync(tmp_path):
    """torchrun, 2 CPU processes with gloo == 1 process with the same global batch: every rank runs
    Newton-Schulz on the same all-reduced gradients, so the weights stay identical."""
    common = MODERN + [
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
    run("run", "addition", "--headless", "--run-dir", str(one), *sets(common))
    run("run", "addition", "--headless", "--run-dir", str(two), "--nproc-per-node", "2", *sets(common))
    l1, l2 = list(losses(one).values()), list(losses(two).values())
    assert len(l1) == len(l2) == 4 and l1[-1] < l1[0]
    # Muon's bf16 Newton-Schulz amplifies the last-bit differences of a sum split over two ranks
    assert max(abs(a - b) for a, b in zip(l1, l2)) < 2e-2
    assert of_kind(read_events(two), "run_finished")[-1]["ranks_in_sync"] is True


def test_muon_with_fp16_loss_scaling_learns_and_resumes(tmp_path):
    """GradScaler unscales and skips through MuonAdamW like through AdamW; its scale travels in last.pt."""
    run_dir = tmp_path / "fp16"
    train_tiny(run_dir, MODERN + ["train.eval_every=1000", "train.dtype=float16", "train.max_steps=30"], timeout=300)
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    assert ckpt["scaler"]["scale"] > 0 and set(ckpt["optimizer"]) == {"muon", "adamw"}
    run("run", "--headless", "--resume", str(run_dir), *sets(["train.max_steps=40"]))
    got = losses(run_dir)
    assert max(got) == 40 and got[40] < got[5] - 0.3


def test_the_optimizer_cannot_change_on_resume(tmp_path):
    run_dir = tmp_path / "adamw"
    run("run", "addition", "--headless", "--run-dir", str(run_dir), *sets(["train.max_steps=5"]))
    out = gptbench("run", "--headless", "--resume", str(run_dir), *sets(["train.max_steps=10", "train.optimizer=muon"]))
    assert out.returncode != 0
    assert "train.optimizer: checkpoint 'adamw', asked 'muon'" in out.stdout + out.stderr


def test_modern_with_a_tied_head_and_wsd_resumes_exactly_inside_the_decay(tmp_path):
    """What the recipe sweep varies: recipe=modern with model.tie_embeddings=true and train.schedule=wsd.
    Stopped at step 12 (the decay began at 10), resumed to 20 == 20 steps straight, and Muon's rate
    follows the same schedule as AdamW's."""
    common = (
        TINY_CHAR
        + MODERN
        + [
            "model.tie_embeddings=true",
            "train.schedule=wsd",
            "train.decay_fraction=0.5",
            "train.max_steps=20",
            "train.log_every=1",
            "train.lr=1e-2",
            "train.min_lr=1e-3",
            "train.muon_lr=0.02",
            "train.eval_every=12",
        ]
    )
    straight, split = tmp_path / "straight", tmp_path / "split"
    run("run", "shakespeare-char", "--headless", "--run-dir", str(straight), *sets(common))
    run("run", "shakespeare-char", "--headless", "--run-dir", str(split), *sets(common + ["train.target_val_loss=100"]))
    assert max(losses(split)) == 12  # stopped by the (huge) target at the first eval
    run("run", "--headless", "--resume", str(split), *sets(["train.target_val_loss=0"]))
    assert losses(split) == losses(straight) and sorted(losses(split)) == list(range(1, 21))
    started = of_kind(read_events(split), "run_started")[0]
    assert started["optimizer"] == "muon (4 matrices) + adamw (4 tensors)"  # wte (= the head) and 3 gains
    lr = {e["step"]: e["lr"] for e in of_kind(read_events(split), "step")}
    assert all(lr[s] == 1e-2 for s in range(1, 11)) and lr[20] == pytest.approx(1e-3 + 9e-3 / 10)
    ckpt = torch.load(split / "last.pt", weights_only=True)
    [muon_group] = ckpt["optimizer"]["muon"]["param_groups"]
    assert muon_group["lr"] == pytest.approx(lr[20] * 0.02 / 1e-2)
    b = torch.load(straight / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(ckpt["model"][k], b[k]) for k in b)
