"""The engine issue's CPU acceptance runs, measured the way a user would see them.

    python bench/cpu_acceptance.py [--out bench/results]

Runs `gptbench run addition --headless` and `gptbench run shakespeare-char
--headless` with the presets' defaults, each as a fresh command, and records:
wall time of the whole command (start-up and evals included), ms/step and
tokens/sec of training (from the step events: elapsed time between the first
and the last step event, so start-up is excluded), and the final metrics. The
raw events go into a `.log` beside the JSON. Run it on an otherwise idle
machine: two torch processes on two cores slow each other down many times over.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def run_preset(name: str, work: Path) -> tuple[dict, list[str]]:
    run_dir = work / name
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "run", name, "--headless", "--json", "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
    )
    wall = time.time() - start
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    lines = proc.stdout.splitlines()
    events = [json.loads(line) for line in lines]
    started = next(e for e in events if e["event"] == "run_started")
    steps = [e for e in events if e["event"] == "step"]
    evals = [e for e in events if e["event"] == "eval"]
    finished = next(e for e in events if e["event"] == "run_finished")
    first, last = steps[0], steps[-1]
    ms_per_step = 1000 * (last["elapsed_s"] - first["elapsed_s"]) / (last["step"] - first["step"])
    return (
        {
            "preset": name,
            "profile": started["profile"],
            "device_name": started["device_name"],
            "params": started["params"],
            "tokens_per_step": started["tokens_per_step"],
            "steps": finished["step"],
            "wall_s": round(wall, 2),
            "ms_per_step": round(ms_per_step, 2),  # includes the evals in between; see tokens_per_sec for pure training
            "tokens_per_sec_median": round(statistics.median(e["tokens_per_sec"] for e in steps[1:]), 1),
            "best_val_loss": finished["best_val_loss"],
            "final_metrics": finished["metrics"],
            "evals": [(e["step"], round(e["val_loss"], 4), e["metrics"]) for e in evals],
        },
        lines,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    p.add_argument("presets", nargs="*", default=["addition", "shakespeare-char"])
    args = p.parse_args()
    results, raw = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets:
            result, lines = run_preset(name, Path(tmp))
            print(json.dumps(result), flush=True)
            results.append(result)
            raw += lines
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"{date.today().isoformat()}-cpu-acceptance"
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "method": __doc__.strip(),
        "results": results,
    }
    base.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    base.with_suffix(".log").write_text("\n".join(raw) + "\n")
    print(f"wrote {base}.json and .log")


if __name__ == "__main__":
    main()
