"""The modern-recipe ablation: classic vs each option alone vs recipe=modern, on the CPU, in alternating pairs.

    OMP_NUM_THREADS=2 python bench/recipes.py [--threads 2] [--target 1.8857] [--eval-every 50]
    python bench/recipes.py --max-steps 20 --eval-every 10 --variants model.position=rope recipe=modern \\
        --addition-steps 20 --addition-pairs 1      # a smoke run, a minute or two

shakespeare-char's CPU profile (4L/4H/128, block 64, batch 12, 2000 steps):
each variant runs right after or before a classic run (classic, rope; modern,
classic; ... the order alternates), so both sides of a pair see the same
machine. Per run: wall time from starting the command to the first eval at or
below --target (nanoGPT's final val on this profile), the best val loss
reached within the wall time of its pair's classic run, and ms/step (the
median step interval after the first, from the step events' tokens/sec).

addition (the preset's defaults): classic vs recipe=modern, alternating, the
step and the wall time at which 100% is reached on the held-out problems and
on all of them.

Every run is a fresh `gptbench run --headless` with OMP_NUM_THREADS and
train.threads set to --threads. Raw events and stdout go to
`results/<date>-recipes/`, the summary to `results/<date>-recipes.json`, and a
Markdown table is printed for bench/NOTES.md and README. Run it on an
otherwise idle machine: timings taken beside another torch process mean nothing.
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

# each option alone (as `--set` keys), then the bundle
OPTIONS = [
    "model.position=rope",
    "model.norm=rmsnorm",
    "model.qk_norm=true",
    "model.activation=relu2",
    "model.tie_embeddings=false",
    "model.logit_softcap=15",
    "train.optimizer=muon",
    "recipe=modern",
]


def seeded_cache(into: Path) -> Path:
    """A data cache with tiny Shakespeare copied from ../shared where there is one (no download)."""
    cache = into / "cache"
    shared = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
    if shared.exists():
        (cache / "gptbench" / "tinyshakespeare").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared, cache / "gptbench" / "tinyshakespeare" / "input.txt")
    return cache


def run(preset: str, sets: list[str], name: str, args, cache: Path) -> dict:
    """One fresh `gptbench run --headless`: its events, stdout and the wall clock of the whole command."""
    run_dir = args.raw / name
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "workbench", "run", preset, "--headless", "--run-dir", str(run_dir)]
    for s in [f"train.threads={args.threads}", *sets]:
        command += ["--set", s]
    start = time.time()
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.time() - start
    (args.raw / f"{name}.stdout").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    shutil.copyfile(run_dir / "events.jsonl", args.raw / f"{name}.events.jsonl")
    shutil.rmtree(run_dir)  # checkpoints: megabytes that the results need not keep
    print(f"  {name}: {wall:.1f}s", flush=True)
    return {"start": start, "wall_s": wall, "events": [json.loads(line) for line in lines]}


def of_kind(result: dict, kind: str) -> list[dict]:
    return [e for e in result["events"] if e["event"] == kind]


def ms_per_step(result: dict) -> float:
    started = of_kind(result, "run_started")[0]
    intervals = [started["tokens_per_step"] / e["tokens_per_sec"] * 1000 for e in of_kind(result, "step")[1:]]
    return round(statistics.median(intervals), 2) if intervals else float("nan")


def text_figures(result: dict, target: float, within_s: float) -> dict:
    evals = [(e["t"] - result["start"], e["val_loss"]) for e in of_kind(result, "eval")]
    reached = [t for t, v in evals if v <= target]
    in_time = [v for t, v in evals if t <= within_s]
    return {
        "wall_s": round(result["wall_s"], 1),
        "to_target_s": round(reached[0], 1) if reached else None,
        "best_val": round(min(v for _, v in evals), 4),
        "best_val_within_classic_wall": round(min(in_time), 4) if in_time else None,
        "ms_per_step": ms_per_step(result),
    }


def addition_figures(result: dict) -> dict:
    figures = {"wall_s": round(result["wall_s"], 1), "ms_per_step": ms_per_step(result)}
    for metric in ("accuracy", "accuracy_all"):
        hit = [e for e in of_kind(result, "eval") if e["metrics"].get(metric) == 1.0]
        figures[f"{metric}_step"] = hit[0]["step"] if hit else None
        figures[f"{metric}_s"] = round(hit[0]["t"] - result["start"], 1) if hit else None
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    p.add_argument("--target", type=float, default=1.8857)
    p.add_argument("--eval-every", type=int, default=50, help="evals of shakespeare-char (both sides alike)")
    p.add_argument("--max-steps", type=int, default=0, help="shakespeare-char steps (0: the profile's 2000)")
    p.add_argument("--variants", nargs="*", default=OPTIONS, help="--set keys, one variant each")
    p.add_argument("--addition-steps", type=int, default=0, help="addition steps (0: the preset's 1000)")
    p.add_argument("--addition-pairs", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()

    stem = f"{date.today()}-recipes"
    args.raw = args.out / stem
    args.raw.mkdir(parents=True, exist_ok=True)
    cache = seeded_cache(Path(tempfile.mkdtemp(prefix="gptbench-recipes-")))  # never in results/ (shared data)
    text = [f"train.eval_every={args.eval_every}"] + ([f"train.max_steps={args.max_steps}"] if args.max_steps else [])
    print(f"shakespeare-char, OMP_NUM_THREADS={args.threads}: classic vs {len(args.variants)} variants", flush=True)
    table = []
    for i, variant in enumerate(args.variants):
        label = variant.replace("=", "-")
        pair = [("classic", []), (label, [variant])]
        results = {}
        for side, sets in pair if i % 2 == 0 else pair[::-1]:
            results[side] = run("shakespeare-char", text + sets, f"char-{i}-{side}", args, cache)
        classic_wall = results["classic"]["wall_s"]
        table.append(
            {
                "variant": variant,
                "classic": text_figures(results["classic"], args.target, classic_wall),
                "variant_figures": text_figures(results[label], args.target, classic_wall),
            }
        )

    add_sets = [f"train.max_steps={args.addition_steps}"] if args.addition_steps else []
    print(f"addition, OMP_NUM_THREADS={args.threads}: classic vs recipe=modern", flush=True)
    addition = []
    for i in range(args.addition_pairs):
        order = [("classic", []), ("modern", ["recipe=modern"])]
        for side, sets in order if i % 2 == 0 else order[::-1]:
            figures = addition_figures(run("addition", add_sets + sets, f"add-{i}-{side}", args, cache))
            addition.append({"side": side, **figures})

    summary = {
        "date": str(date.today()),
        "host": platform.node(),
        "threads": args.threads,
        "target": args.target,
        "eval_every": args.eval_every,
        "max_steps": args.max_steps or 2000,
        "shakespeare_char": table,
        "addition": addition,
    }
    path = args.out / f"{stem}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print_tables(summary)
    print(f"\n{path}; raw events and stdout in {args.raw}")
    return 0


def print_tables(summary: dict) -> None:
    def cell(value, unit=""):
        return "–" if value is None else f"{value}{unit}"

    print(f"\nshakespeare-char CPU profile, OMP_NUM_THREADS={summary['threads']}, target val {summary['target']}")
    print("| variant | to target (variant / its classic) | best val by classic's wall time | ms/step |")
    print("| --- | --- | --- | --- |")
    for row in summary["shakespeare_char"]:
        v, c = row["variant_figures"], row["classic"]
        ratio = f" ({v['to_target_s'] / c['to_target_s']:.2f}×)" if v["to_target_s"] and c["to_target_s"] else ""
        print(
            f"| `{row['variant']}` | {cell(v['to_target_s'], ' s')} / {cell(c['to_target_s'], ' s')}{ratio} "
            f"| {cell(v['best_val_within_classic_wall'])} / {cell(c['best_val_within_classic_wall'])} "
            f"| {v['ms_per_step']} / {c['ms_per_step']} |"
        )
    print(f"\naddition, OMP_NUM_THREADS={summary['threads']}")
    print("| recipe | 100% held-out (step, s) | 100% all (step, s) | ms/step | wall |")
    print("| --- | --- | --- | --- | --- |")
    for row in summary["addition"]:
        print(
            f"| {row['side']} | {cell(row['accuracy_step'])}, {cell(row['accuracy_s'], ' s')} "
            f"| {cell(row['accuracy_all_step'])}, {cell(row['accuracy_all_s'], ' s')} "
            f"| {row['ms_per_step']} | {row['wall_s']} s |"
        )


if __name__ == "__main__":
    sys.exit(main())
