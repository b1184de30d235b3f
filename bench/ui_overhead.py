"""Does watching a run slow it down? Trainer tokens/sec under the app vs headless.

    python bench/ui_overhead.py [--steps 400] [--repeats 3] [--size 80x24] [--app-only]
                                [--out bench/results/ui_overhead.json]

Method (written up with the figures in bench/ui_overhead.md):
- the same job both ways: the shakespeare-char preset's CPU profile on this
  machine, `--set train.max_steps=STEPS train.eval_every=STEPS train.log_every=10
  train.device=cpu data.path=<tiny Shakespeare from ../shared>` (one eval, at
  the very end, after the measured steps);
- headless: `gptbench run shakespeare-char --headless` in a subprocess, its
  output read and printed line by line, as a person over SSH would see it;
- app: `GPTBenchApp(preset=..., overrides=...)` driven by Textual's
  `run_test()` (a headless terminal of --size, 120x40 unless told, so the app
  composes and renders every frame as it would on a real one), left on the
  dashboard until the run finishes; `--app-only` runs only this side, for the
  app's own CPU share (compare two versions of the code by running this script
  with each on PYTHONPATH, alternating);
- throughput: each run's step events from its events.jsonl, the first
  WARMUP of them dropped (allocator, caches), the median tokens_per_sec of the
  rest;
- pairs: REPEATS pairs of one headless and one app run, back to back, in
  alternating order (H A, A H, H A, ...) so that drift of the machine hits
  both sides alike; each pair gives a ratio app / headless, and the result is
  the median of the pair ratios (the bar is >= 0.97);
- the app's own CPU time over its run is recorded too (share of one core),
  and the load average before each run, to tell a noisy neighbour from a slow UI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESET = "shakespeare-char"
WARMUP = 3  # step events dropped at the start of each run
# The project's copy of tiny Shakespeare (see DESIGN.md); the machine may be offline.
SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"


def overrides(steps: int) -> list[str]:
    data = [f"data.path={SHARED_TEXT}"] if SHARED_TEXT.exists() else []
    return [f"train.max_steps={steps}", f"train.eval_every={steps}", "train.log_every=10", "train.device=cpu", *data]


def tokens_per_sec(run_dir: Path) -> float:
    with open(run_dir / "events.jsonl", encoding="utf-8") as f:
        events = [json.loads(line) for line in f]
    rates = [e["tokens_per_sec"] for e in events if e["event"] == "step"][WARMUP:]
    return statistics.median(rates)


def run_headless(run_dir: Path, steps: int) -> float:
    argv = ["gptbench", "run", PRESET, "--headless", "--run-dir", str(run_dir)]
    for o in overrides(steps):
        argv += ["--set", o]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            sys.stderr.write(f"  headless | {line}")
    assert proc.returncode == 0, f"headless run failed ({proc.returncode})"
    return tokens_per_sec(run_dir)


def run_in_app(runs_root: Path, steps: int, size: tuple[int, int] = (120, 40)) -> tuple[float, float]:
    """(trainer tok/s, the app's CPU share of one core while it watched)."""
    os.environ["GPTBENCH_RUNS"] = str(runs_root)
    from workbench.tui.app import GPTBenchApp
    from workbench.tui.screens.run import RunScreen

    async def drive() -> Path:
        app = GPTBenchApp(preset=PRESET, overrides=overrides(steps))
        async with app.run_test(size=size) as pilot:
            while not isinstance(app.screen, RunScreen):
                await pilot.pause(0.1)
            screen = app.screen
            while screen.state.last_step is None:  # the app's CPU is counted while training only
                await pilot.pause(0.1)
            wall, cpu = time.monotonic(), time.process_time()
            while screen.trainer_running or screen.state.finished is None:
                await asyncio.sleep(0.5)  # hands off, like a person watching (pilot.pause would force redraws)
            assert screen.state.finished["reason"] == "completed"
            return screen.run_dir, (time.process_time() - cpu) / (time.monotonic() - wall)

    run_dir, cpu_share = asyncio.run(drive())
    sys.stderr.write(f"  app      | finished {run_dir.name}, app CPU {100 * cpu_share:.1f}% of one core\n")
    return tokens_per_sec(run_dir), cpu_share


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--repeats", type=int, default=6, help="pairs of runs")
    p.add_argument("--size", default="120x40", help="the terminal's COLUMNSxROWS")
    p.add_argument("--app-only", action="store_true", help="only the app's runs: its own CPU share")
    p.add_argument("--out", type=Path, default=Path("bench/results/ui_overhead.json"))
    args = p.parse_args()
    size = tuple(int(n) for n in args.size.split("x"))
    if args.app_only:
        app_only(args.steps, args.repeats, size, args.out)
        return

    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            pair = {"order": "headless, app" if i % 2 == 0 else "app, headless"}
            for side in pair["order"].split(", "):
                pair[f"{side}_loadavg"] = os.getloadavg()[0]
                if side == "headless":
                    pair["headless_tok_s"] = run_headless(Path(tmp) / f"headless-{i}", args.steps)
                else:
                    pair["app_tok_s"], pair["app_cpu_share"] = run_in_app(Path(tmp) / f"app-{i}", args.steps)
            pair["ratio"] = pair["app_tok_s"] / pair["headless_tok_s"]
            pairs.append(pair)
            print(
                f"pair {i + 1} ({pair['order']}): headless {pair['headless_tok_s']:,.0f} tok/s, "
                f"app {pair['app_tok_s']:,.0f} tok/s, ratio {pair['ratio']:.3f}, "
                f"app CPU {100 * pair['app_cpu_share']:.1f}%",
                flush=True,
            )
    result = {
        "preset": PRESET,
        "overrides": overrides(args.steps),
        "warmup_step_events": WARMUP,
        "pairs": pairs,
        "headless_median": statistics.median(p["headless_tok_s"] for p in pairs),
        "app_median": statistics.median(p["app_tok_s"] for p in pairs),
        "app_cpu_share_median": statistics.median(p["app_cpu_share"] for p in pairs),
        "ratio": statistics.median(p["ratio"] for p in pairs),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"median: headless {result['headless_median']:,.0f} tok/s, app {result['app_median']:,.0f} tok/s, "
        f"median pair ratio {result['ratio']:.3f}, app CPU {100 * result['app_cpu_share_median']:.1f}% of one core"
    )


def app_only(steps: int, repeats: int, size: tuple[int, int], out: Path) -> None:
    """The app's CPU share of one core while it watches, `repeats` runs; appended to `out` (JSON lines)."""
    import workbench

    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            loadavg = os.getloadavg()[0]
            tok_s, cpu_share = run_in_app(Path(tmp) / f"app-{i}", steps, size)
            record = {
                "code": str(Path(workbench.__file__).parent),
                "size": f"{size[0]}x{size[1]}",
                "steps": steps,
                "app_cpu_share": cpu_share,
                "app_tok_s": tok_s,
                "loadavg_before": loadavg,
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            print(f"{record['code']} {record['size']}: app CPU {100 * cpu_share:.2f}% of one core", flush=True)


if __name__ == "__main__":
    main()
