"""Compile time against the micro-batch: a bounded graph compiles as fast at B=32 as at B=4.

    python bench/compile_time.py [--batches 4 32] [--pairs 1]

A gpt2-124m-shaped run (GPT-2's 50,257-token vocabulary, a small body so it
compiles on a CPU), compiled with inductor, at each micro-batch with the same
tokens_per_step, each in a fresh trainer process with Inductor's caches off.
It reports `compile_s` from `run_finished` (train and eval graphs, backward
included): each round's, and per micro-batch their median and minimum. The
fused loss is one opaque op, so the graph does not grow with the batch: the
issue's bound is compile_s(B=32) / compile_s(B=4) <= 1.5 (on the medians).
(Before, its Python chunk loop was unrolled: 1 chunk body at B=4, 7 at B=32.)
Writes `results/<date>-compile-time.json`. Timings: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BLOCK = 64


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[4, 32])
    p.add_argument("--pairs", type=int, default=1, help="rounds, alternating the order")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()
    tokens_per_step = max(args.batches) * BLOCK
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(tmp) / "shards"
        shards.mkdir()
        rng = np.random.default_rng(0)
        for name, count in (("train.bin", 1 << 18), ("val.bin", 1 << 15)):
            ids = rng.integers(0, 50257, count, dtype=np.uint16)
            ids[:2] = 50256
            ids.tofile(shards / name)
        for i in range(args.pairs):
            for batch in args.batches if i % 2 == 0 else args.batches[::-1]:
                run_dir = Path(tmp) / f"b{batch}-{i}"
                overrides = [
                    "model.n_layer=2",
                    "model.n_head=2",
                    "model.n_embd=64",
                    f"model.block_size={BLOCK}",
                    f"data.path={shards}",
                    f"train.batch_size={batch}",
                    f"train.tokens_per_step={tokens_per_step}",
                    "train.compile=true",
                    "train.max_steps=2",
                    "train.log_every=1",
                    "train.eval_every=2",
                    "train.eval_steps=1",
                    "train.eval_tasks=",
                ]
                argv = [sys.executable, "-m", "workbench.engine.worker", "--run-dir", str(run_dir)]
                argv += ["--preset", "gpt2-124m", *[a for o in overrides for a in ("--set", o)]]
                env = {
                    **os.environ,
                    "PYTHONPATH": str(REPO),
                    "OMP_NUM_THREADS": str(args.threads),
                    "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1",  # every run compiles from scratch
                }
                subprocess.run(argv, env=env, cwd=REPO, check=True, capture_output=True)
                events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
                finished = next(e for e in events if e["event"] == "run_finished")
                runs.append({"batch": batch, "compile_s": finished["compile_s"], "graphs": finished["compiled_graphs"]})
                print(runs[-1], flush=True)
    # the median of each batch's rounds (with 2 rounds, their mean); the fastest round beside it
    median = {b: statistics.median(r["compile_s"] for r in runs if r["batch"] == b) for b in args.batches}
    fastest = {b: min(r["compile_s"] for r in runs if r["batch"] == b) for b in args.batches}
    summary = {
        "tokens_per_step": tokens_per_step,
        "median_compile_s": median,
        "min_compile_s": fastest,
        "ratio_largest_over_smallest_medians": round(median[max(args.batches)] / median[min(args.batches)], 2),
    }
    print(json.dumps(summary, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{date.today().isoformat()}-compile-time.json"
    path.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
