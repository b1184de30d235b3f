"""Muon's step: torch.optim.Muon (matrix by matrix) against gptbench's (same shapes stacked), alternating.

    OMP_NUM_THREADS=1 python bench/muon_step.py [--threads 1] [--pairs 10]    # the optimizer step alone
    python bench/muon_step.py --runs [--threads 2] [--pairs 2] [--steps 300]  # whole training steps

The optimizer step alone: one process builds shakespeare-char's CPU-profile
model with recipe=modern (16 hidden matrices in 3 shapes), gives every
parameter a random gradient, and times blocks of --steps-per-block Muon steps
of each side, alternating (torch, gptbench, gptbench, torch, ...). Both sides
start from the same weights and gradients; the script reports how far their
weights are apart at the end.

--runs: whole steps of `gptbench run shakespeare-char --headless` (its CPU
profile, --steps steps, no evals), alternating classic, recipe=modern with
this tree's Muon and recipe=modern with torch.optim.Muon (this tree with one
line changed, exported to a temporary folder). ms/step is the median interval
of the step events after the first (start-up excluded); the two modern sides'
losses are compared step by step.

Both modes also record CPU time (the process's, the runs' children's): on
a machine shared with other processes, a side that waits for a core loses
wall time but not CPU time, so at one thread the CPU-time ratio is the
steadier figure.

Writes `results/<date>-muon-step[-runs]-t<threads>.json` (and the runs' events in a
`.log` beside it). Timings taken beside other torch processes are noisy:
read the ratios of the pairs, not the milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def modern_model():
    from workbench import presets
    from workbench.engine.model import GPT

    cfg = presets.resolve(presets.load("shakespeare-char"), ["profile=cpu", "recipe=modern"])
    cfg.model.vocab_size = 65  # tiny Shakespeare's characters
    return GPT(cfg.model), cfg.train


def optimizer_step(args) -> dict:
    import torch

    from workbench.engine.optim import MuonAdamW, make_optimizer

    torch.set_num_threads(args.threads)
    sides = {}
    for name in ("torch", "gptbench"):
        torch.manual_seed(0)
        model, train = modern_model()
        opt = make_optimizer(model, train, "cpu")
        assert isinstance(opt, MuonAdamW)
        if name == "torch":
            opt = torch.optim.Muon(opt.muon.param_groups)  # the same matrices and settings, torch's step
        else:
            opt = opt.muon
        gen = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()  # warm-up: momentum buffers allocated, kernels chosen
        sides[name] = (model, opt)
    shapes = sorted({"x".join(map(str, p.shape)) for g in sides["torch"][1].param_groups for p in g["params"]})
    ms = {name: [] for name in sides}
    cpu_ms = {name: [] for name in sides}
    for i in range(args.pairs):
        for name in ("torch", "gptbench") if i % 2 == 0 else ("gptbench", "torch"):
            opt = sides[name][1]
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(args.steps_per_block):
                opt.step()
            ms[name].append(round((time.perf_counter() - start) / args.steps_per_block * 1000, 3))
            cpu_ms[name].append(round((time.process_time() - cpu_start) / args.steps_per_block * 1000, 3))
            print(f"  {name:8} {ms[name][-1]:7.2f} ms/step, {cpu_ms[name][-1]:7.2f} CPU ms/step", flush=True)
    a, b = (dict(sides[name][0].named_parameters()) for name in ("torch", "gptbench"))
    max_diff = max((a[k] - b[k]).abs().max().item() for k in a)
    matrices = sum(len(g["params"]) for g in sides["torch"][1].param_groups)
    return {
        "what": "optimizer step (Muon's matrices only)",
        "matrices": matrices,
        "shapes": shapes,
        "ms": ms,
        "cpu_ms": cpu_ms,
        "ratios": [round(g / t, 3) for t, g in zip(ms["torch"], ms["gptbench"])],
        "cpu_ratios": [round(g / t, 3) for t, g in zip(cpu_ms["torch"], cpu_ms["gptbench"])],
        "median_ms": {name: statistics.median(v) for name, v in ms.items()},
        "median_cpu_ms": {name: statistics.median(v) for name, v in cpu_ms.items()},
        "max_weight_difference_after": max_diff,
    }


def with_torch_muon(into: Path) -> Path:
    """This tree with make_optimizer building torch.optim.Muon: the step before the stacked Newton-Schulz."""
    tree = into / "torch-muon"
    shutil.copytree(REPO / "workbench", tree / "workbench")
    shutil.copytree(REPO / "presets", tree / "presets")
    (tree / "workbench" / "bundled_presets").symlink_to("../presets")
    optim = tree / "workbench" / "engine" / "optim.py"
    text = optim.read_text()
    assert text.count("    muon = Muon(hidden") == 1
    optim.write_text(text.replace("    muon = Muon(hidden", "    muon = torch.optim.Muon(hidden"))
    return tree


def runs(args) -> dict:
    from cpu_vs_base import seeded_cache, step_ms

    results = {"what": f"whole steps, shakespeare-char CPU profile, {args.steps} steps", "runs": []}
    raw = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seeded_cache(tmp)
        sides = {
            "classic": (REPO, []),
            "modern": (REPO, ["recipe=modern"]),
            "modern-torch-muon": (with_torch_muon(tmp), ["recipe=modern"]),
        }
        order = list(sides)
        for i in range(args.pairs):
            for name in order if i % 2 == 0 else order[::-1]:
                tree, sets = sides[name]
                env = {
                    **os.environ,
                    "PYTHONPATH": str(tree),
                    "OMP_NUM_THREADS": str(args.threads),
                    "XDG_CACHE_HOME": str(tmp / "cache"),
                }
                overrides = [
                    f"train.max_steps={args.steps}",
                    "train.eval_every=100000",
                    "train.log_every=25",
                    f"train.threads={args.threads}",
                    *sets,
                ]
                command = [sys.executable, "-m", "workbench.cli", "run", "shakespeare-char", "--headless", "--json"]
                command += ["--run-dir", str(tmp / f"{name}-{i}")] + [a for o in overrides for a in ("--set", o)]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                if out.returncode != 0:
                    sys.exit(f"{name}: {out.stdout[-2000:]}\n{out.stderr[-2000:]}")
                events = [json.loads(line) for line in out.stdout.splitlines()]
                losses = {e["step"]: e["loss"] for e in events if e["event"] == "step"}
                figures = {"ms_per_step": round(step_ms(events), 2), "cpu_s": round(cpu_s, 2)}
                results["runs"].append({"side": name, "pair": i, **figures, "losses": losses})
                raw += [f"# {name} pair={i}"] + [json.dumps(e) for e in events]
                print(f"  {name:18} {figures['ms_per_step']:7.2f} ms/step, {figures['cpu_s']:6.1f} CPU s", flush=True)
    by_side = {name: [r for r in results["runs"] if r["side"] == name] for name in sides}
    median = {name: statistics.median(r["ms_per_step"] for r in rs) for name, rs in by_side.items()}
    pairs = list(zip(*by_side.values()))
    results["median_ms"] = median
    results["median_cpu_s"] = {name: statistics.median(r["cpu_s"] for r in rs) for name, rs in by_side.items()}
    results["ratios_per_pair"] = [
        {
            "modern/classic": round(m["ms_per_step"] / c["ms_per_step"], 3),
            "modern-torch-muon/classic": round(t["ms_per_step"] / c["ms_per_step"], 3),
            "modern/modern-torch-muon": round(m["ms_per_step"] / t["ms_per_step"], 3),
            "cpu_s modern/classic": round(m["cpu_s"] / c["cpu_s"], 3),
            "cpu_s modern-torch-muon/classic": round(t["cpu_s"] / c["cpu_s"], 3),
            "cpu_s modern/modern-torch-muon": round(m["cpu_s"] / t["cpu_s"], 3),
        }
        for c, m, t in pairs
    ]
    results["modern_losses_equal_torch_muon"] = all(m["losses"] == t["losses"] for _, m, t in pairs)
    return results, raw


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--steps-per-block", type=int, default=10, help="optimizer steps timed as one block")
    p.add_argument("--runs", action="store_true", help="whole training steps instead of the optimizer step")
    p.add_argument("--steps", type=int, default=300, help="--runs: training steps per run")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch is imported (it is not yet)

    import torch

    header = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_before": os.getloadavg(),
        "torch": torch.__version__,
        "omp_num_threads": args.threads,
    }
    print(f"OMP_NUM_THREADS={args.threads}, load average {header['load_average_before'][0]:.1f}", flush=True)
    raw = []
    if args.runs:
        result, raw = runs(args)
    else:
        result = optimizer_step(args)
    result = {**header, **result, "load_average_after": os.getloadavg()}
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "ms")}, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{header['date']}-muon-step{'-runs' if args.runs else ''}-t{args.threads}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    if raw:
        stem.with_suffix(".log").write_text("\n".join(raw) + "\n")
    print(f"wrote {stem}.json")


if __name__ == "__main__":
    main()
