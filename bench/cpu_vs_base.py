"""This tree against an earlier commit on the CPU, in alternating pairs, one session.

    python bench/cpu_vs_base.py [--base ed9871c] [--threads 1 2] [--pairs 3] [--target 1.8857]

The engine issue's CPU target: a shakespeare-char step (its CPU profile) at
<= 0.75x the time of the base commit, and the time to reach val loss 1.8857
no worse. Machines here differ by 3x from one day to the next, so both sides
run in this session, alternating (base, head, base, head, ...), with the
thread count stated (OMP_NUM_THREADS), on an otherwise idle machine.

Two measurements per side and thread count:
- step time: a 400-step run without evals; ms/step from the step events'
  tokens/sec (the median of the log intervals after the first, which holds
  the warm-up), so start-up is excluded.
- time to target: the preset's full CPU profile (2000 steps, evals every 250),
  wall time from starting the command to the first eval at or below --target,
  as a user would wait for it.

The base commit is exported with `git archive` into a temporary folder and run
from there (with its own presets). Writes `results/<date>-cpu-vs-<base>.json`
and the raw events in a `.log` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def export(commit: str, into: Path) -> Path:
    tree = into / commit
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    # the package ships presets/ as workbench.bundled_presets; from a source tree, a link does that
    (tree / "workbench" / "bundled_presets").symlink_to("../presets")
    return tree


def seeded_cache(into: Path) -> Path:
    """A data cache for both sides; tiny Shakespeare copied from ../shared where there is one (no download)."""
    cache = into / "cache"
    shared = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
    if shared.exists():
        (cache / "gptbench" / "tinyshakespeare").mkdir(parents=True)
        shutil.copyfile(shared, cache / "gptbench" / "tinyshakespeare" / "input.txt")
    return cache


def gptbench(tree: Path, threads: int, overrides: list[str], run_dir: Path) -> tuple[float, list[dict]]:
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": str(threads),
        "XDG_CACHE_HOME": str(run_dir.parent / "cache"),
    }
    args = [a for o in overrides for a in ("--set", o)]
    start = time.time()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "run",
            "shakespeare-char",
            "--headless",
            "--json",
            "--run-dir",
            str(run_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
    )
    if out.returncode != 0:
        sys.exit(f"{tree.name}: {out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return start, [json.loads(line) for line in out.stdout.splitlines()]


def step_ms(events: list[dict]) -> float:
    started = next(e for e in events if e["event"] == "run_started")
    rates = [e["tokens_per_sec"] for e in events if e["event"] == "step"][1:]
    return 1000 * started["tokens_per_step"] / statistics.median(rates)


def time_to_target(start: float, events: list[dict], target: float) -> float | None:
    hit = next((e for e in events if e["event"] == "eval" and e["val_loss"] <= target), None)
    return hit["t"] - start if hit else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="ed9871c")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--pairs", type=int, default=3, help="alternating pairs for the step time")
    p.add_argument("--target-pairs", type=int, default=1, help="alternating pairs for the time to target")
    p.add_argument("--target", type=float, default=1.8857, help="val loss of nanoGPT's CPU run")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE for both sides' runs")
    p.add_argument("--tag", default="", help="appended to the result's file name")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()

    results: dict = {
        "base": args.base,
        "head": _head(),
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
        "torch": _torch_version(),
        "overrides": args.overrides,
        "runs": [],
    }
    raw: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {"base": export(args.base, tmp), "head": REPO}
        seeded_cache(tmp)
        for threads in args.threads:
            for i in range(args.pairs):
                for side in ("base", "head") if i % 2 == 0 else ("head", "base"):
                    _, events = gptbench(
                        trees[side],
                        threads,
                        [*args.overrides, "train.max_steps=400", "train.eval_every=100000", "train.log_every=50"],
                        tmp / f"step-{side}-{threads}-{i}",
                    )
                    ms = step_ms(events)
                    results["runs"].append(
                        {"what": "step", "side": side, "threads": threads, "ms_per_step": round(ms, 2)}
                    )
                    raw += [f"# step {side} threads={threads} pair={i}"] + [json.dumps(e) for e in events]
                    print(f"step   {side:4}  threads={threads}  {ms:6.2f} ms/step", flush=True)
            for i in range(args.target_pairs):
                for side in ("base", "head") if i % 2 == 0 else ("head", "base"):
                    start, events = gptbench(trees[side], threads, args.overrides, tmp / f"target-{side}-{threads}-{i}")
                    seconds = time_to_target(start, events, args.target)
                    best = min(e["val_loss"] for e in events if e["event"] == "eval")
                    results["runs"].append(
                        {
                            "what": "time_to_target",
                            "side": side,
                            "threads": threads,
                            "target": args.target,
                            "seconds": seconds and round(seconds, 1),
                            "best_val_loss": round(best, 4),
                        }
                    )
                    raw += [f"# target {side} threads={threads} pair={i}"] + [json.dumps(e) for e in events]
                    shown = f"{seconds:6.1f} s" if seconds else "not reached"
                    print(f"target {side:4}  threads={threads}  {shown}  (best val {best:.4f})", flush=True)

    summary = {}
    for threads in args.threads:

        def ms(side, threads=threads):
            return statistics.median(
                r["ms_per_step"]
                for r in results["runs"]
                if r["what"] == "step" and r["side"] == side and r["threads"] == threads
            )

        summary[f"threads={threads}"] = {
            "base_ms": ms("base"),
            "head_ms": ms("head"),
            "ratio": round(ms("head") / ms("base"), 3),
        }
    results["summary"] = summary
    print(json.dumps(summary, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{results['date']}-cpu-vs-{args.base}{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    stem.with_suffix(".log").write_text("\n".join(raw) + "\n")
    print(f"wrote {stem}.json and .log")


def _head() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "workbench", "presets"], capture_output=True, text=True
    ).stdout
    return out.stdout.strip() + ("+changes" if dirty.strip() else "")


def _torch_version() -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    )
    return out.stdout.strip()


if __name__ == "__main__":
    main()
