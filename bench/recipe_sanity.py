"""The modern recipe's sanity runs: val loss (shakespeare-char) and accuracy (addition) at each eval, short runs.

    OMP_NUM_THREADS=1 python bench/recipe_sanity.py [--only NAME ...]

Each run is a fresh `gptbench run --headless` on one thread (evals are
deterministic at a fixed thread count, so the losses reproduce; the wall
times depend on the machine's load). shakespeare-char's CPU profile is cut to
300 or 400 steps (the cosine reaches min_lr at the cut), eval every 100;
addition runs 800 steps, eval every 200. Raw events go to
`results/<date>-recipe-sanity/NAME.events.jsonl`, the tables to
`results/<date>-recipe-sanity.json` and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# shakespeare-char's modern options one by one, for addition (whose recipe=modern is Muon alone)
MODERN_OPTIONS = [
    "model.position=rope",
    "model.norm=rmsnorm",
    "model.qk_norm=true",
    "model.activation=relu2",
    "model.tie_embeddings=false",
    "model.logit_softcap=15",
]
CHAR = ["train.eval_every=100"]
ADDITION = ["train.max_steps=800", "train.eval_every=200"]

# name -> (preset, --set keys)
RUNS = {
    "char-classic-300": ("shakespeare-char", [*CHAR, "train.max_steps=300"]),
    "char-modern-adamw-300": (
        "shakespeare-char",
        [*CHAR, "train.max_steps=300", "recipe=modern", "train.optimizer=adamw"],
    ),
    "char-modern-300": ("shakespeare-char", [*CHAR, "train.max_steps=300", "recipe=modern"]),
    "char-modern-muon_lr0.04-300": (
        "shakespeare-char",
        [*CHAR, "train.max_steps=300", "recipe=modern", "train.muon_lr=0.04"],
    ),
    "char-classic-muon-300": ("shakespeare-char", [*CHAR, "train.max_steps=300", "train.optimizer=muon"]),
    "char-classic-400": ("shakespeare-char", [*CHAR, "train.max_steps=400"]),
    "char-modern-400": ("shakespeare-char", [*CHAR, "train.max_steps=400", "recipe=modern"]),
    "add-classic": ("addition", ADDITION),
    "add-options-muon0.02": ("addition", [*ADDITION, *MODERN_OPTIONS, "train.optimizer=muon", "train.muon_lr=0.02"]),
    "add-options-muon0.01": ("addition", [*ADDITION, *MODERN_OPTIONS, "train.optimizer=muon", "train.muon_lr=0.01"]),
    "add-options-adamw": ("addition", [*ADDITION, *MODERN_OPTIONS]),
    "add-classic-muon0.02": ("addition", [*ADDITION, "train.optimizer=muon", "train.muon_lr=0.02"]),
}


def seeded_cache(into: Path) -> Path:
    """A data cache with tiny Shakespeare copied from ../shared where there is one (no download)."""
    cache = into / "cache"
    shared = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
    if shared.exists():
        (cache / "gptbench" / "tinyshakespeare").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared, cache / "gptbench" / "tinyshakespeare" / "input.txt")
    return cache


def run(name: str, preset: str, sets: list[str], raw: Path, cache: Path) -> list[dict]:
    run_dir = Path(tempfile.mkdtemp(prefix="gptbench-sanity-")) / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "workbench", "run", preset, "--headless", "--run-dir", str(run_dir)]
    for s in ["train.threads=1", *sets]:
        command += ["--set", s]
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    shutil.copyfile(run_dir / "events.jsonl", raw / f"{name}.events.jsonl")
    shutil.rmtree(run_dir.parent)
    return [json.loads(line) for line in (raw / f"{name}.events.jsonl").read_text().splitlines()]


def figures(events: list[dict]) -> dict:
    started = next(e for e in events if e["event"] == "run_started")
    steps = [e for e in events if e["event"] == "step"][1:]  # the first interval compiles and warms up
    intervals = [started["tokens_per_step"] / e["tokens_per_sec"] * 1000 for e in steps if e["tokens_per_sec"]]
    evals = {
        e["step"]: {"val_loss": round(e["val_loss"], 4), **{k: round(v, 4) for k, v in e["metrics"].items()}}
        for e in events
        if e["event"] == "eval"
    }
    return {"ms_per_step": round(statistics.median(intervals), 1) if intervals else None, "evals": evals}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()
    stem = f"{date.today().isoformat()}-recipe-sanity"
    raw = args.out / stem
    raw.mkdir(parents=True, exist_ok=True)
    cache = seeded_cache(Path(tempfile.mkdtemp(prefix="gptbench-sanity-cache-")))
    results = {}
    for name in args.only:
        preset, sets = RUNS[name]
        results[name] = {"preset": preset, "sets": sets, **figures(run(name, preset, sets, raw, cache))}
        print(name, json.dumps(results[name]["evals"]), f"{results[name]['ms_per_step']} ms/step", flush=True)
    (args.out / f"{stem}.json").write_text(json.dumps({"threads": 1, "runs": results}, indent=1) + "\n")
    print(f"wrote {args.out / stem}.json and the raw events in {raw}")


if __name__ == "__main__":
    main()
