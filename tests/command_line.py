"""Running `gptbench` as a user would: a real subprocess, its output captured.

Also what the integration tests share about it: the tiny char-level model
(TINY_CHAR), a finished tiny run (`train_tiny`), and picking events by kind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# A char-level model small enough to train in a second or two.
TINY_CHAR = [
    "model.n_layer=1",
    "model.n_head=2",
    "model.n_embd=32",
    "model.block_size=32",
    "train.batch_size=8",
    "train.eval_steps=2",
    "train.log_every=5",
    "train.warmup_steps=0",
    "train.lr=3e-3",
]


def gptbench(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    """`gptbench ARGS` in a fresh interpreter; never reaches the Hub (HF_HUB_OFFLINE)."""
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def sets(overrides: list[str]) -> list[str]:
    """["train.lr=1"] -> ["--set", "train.lr=1"]."""
    return [a for o in overrides for a in ("--set", o)]


def of_kind(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["event"] == kind]


def train_tiny(
    run_dir: Path, overrides: list[str], preset: str = "shakespeare-char", timeout: float = 180
) -> subprocess.CompletedProcess:
    """`gptbench run PRESET --headless` of the tiny char model (TINY_CHAR, then `overrides`) into run_dir,
    to the end: it must complete."""
    out = gptbench(
        "run", preset, "--headless", "--run-dir", str(run_dir), *sets(TINY_CHAR + overrides), timeout=timeout
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out
