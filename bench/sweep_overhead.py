"""What a sweep costs beyond its trials: `--parallel 1`, the sweep's wall time against the sum of its trials'.

    OMP_NUM_THREADS=1 python bench/sweep_overhead.py [--trials 6] [--repeats 2] [--out bench/results]

Each repeat runs one fresh `gptbench sweep addition --grid train.lr=... --parallel 1 --headless --json`
(tiny models: the trainers' start-up is most of a trial) and records:

- sweep_s: the whole command, timed from outside (Python start-up, Optuna, the study, every trial);
- trials_s: the sum over trials of the trainer process's lifetime, from its spawn to the sweep seeing
  it exit (the sweep's `trial_finished.wall_s`);
- overhead_s = sweep_s - trials_s: the sweep's own start-up, Optuna's ask/tell on SQLite, and the gaps
  between one trial's exit and the next one's spawn (polled every 0.1 s).

The raw JSON lines of every sweep go into the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "data.ndigit=1",
    "data.holdout=20",
    "model.n_layer=1",
    "model.n_head=2",
    "model.n_embd=16",
    "train.batch_size=32",
    "train.max_steps=100",
    "train.eval_every=50",
    "train.warmup_steps=0",
    "train.min_lr=0",
]


def one_sweep(trials: int, work: Path) -> dict:
    lrs = ",".join(f"{1e-3 * (1 + i)!r}" for i in range(trials))
    argv = [sys.executable, "-m", "workbench", "sweep", "addition", "--grid", f"train.lr={lrs}", "--parallel", "1"]
    argv += [a for s in TINY for a in ("--set", s)]
    argv += ["--sweep-dir", str(work / "sweep"), "--headless", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=work)
    sweep_s = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"the sweep failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    finished = [e for e in events if e["event"] == "trial_finished"]
    trials_s = sum(e["wall_s"] for e in finished)
    return {
        "sweep_s": round(sweep_s, 3),
        "trials_s": round(trials_s, 3),
        "overhead_s": round(sweep_s - trials_s, 3),
        "overhead_per_trial_s": round((sweep_s - trials_s) / len(finished), 3),
        "overhead_fraction": round((sweep_s - trials_s) / sweep_s, 4),
        "trials": len(finished),
        "events": events,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()
    runs = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            r = one_sweep(args.trials, Path(tmp))
        print(
            f"repeat {i + 1}: sweep {r['sweep_s']:.1f} s, trials {r['trials_s']:.1f} s, "
            f"overhead {r['overhead_s']:.1f} s ({r['overhead_per_trial_s']:.2f} s per trial, "
            f"{100 * r['overhead_fraction']:.1f}%)",
            flush=True,
        )
        runs.append(r)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sweep_overhead-{stamp}.json"
    record = {
        "what": "gptbench sweep --parallel 1: the command's wall time against the sum of its trials' wall times",
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_at_end": os.getloadavg(),
        "note": "a shared 2-core machine: other jobs ran at the same time",
        "tiny_sets": TINY,
        "repeats": runs,
    }
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"raw: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
