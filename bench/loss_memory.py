"""Peak memory of one training step: the fused LM-head loss against a base commit's.

    python bench/loss_memory.py [--base ed9871c] [--batch 8] [--block 256]
    python bench/loss_memory.py --compile [--batch 8] [--block 256]

The base commit kept the (B, T, vocab) logits, their float32 copy and their
gradient alive through the backward pass; engine/loss.py computes the head
and the loss a chunk of rows at a time. On the CPU the difference shows in the
peak resident memory of a fresh process doing one forward+backward on a
mid-size model with GPT-2's vocabulary (n_layer 4, n_embd 256): each side runs
in its own process, alternating, and reports ru_maxrss after the step minus
the RSS before it. Memory, unlike time, does not depend on how busy the
machine is. Writes `results/<date>-loss-memory.json`.

`--compile` compares this tree's eager step with its torch.compile'd step
(inductor) instead: the fused loss is one opaque op for Inductor, so the
compiled step must not hold more than the eager one (the issue's bound: 10%).
Both sides run a warm-up step first (the compiler's own memory is not the
step's), then reset the peak (Linux: /proc/self/clear_refs) and measure the
second step. Writes `results/<date>-loss-memory-compile.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STEP = """
import json, resource, sys, torch
from workbench.config import ModelConfig
from workbench.engine.model import GPT
torch.manual_seed(0)
B, T = int(sys.argv[1]), int(sys.argv[2])
model = GPT(ModelConfig(n_layer=4, n_head=4, n_embd=256, block_size=T, vocab_size=50257, bias=True))
x = torch.randint(0, 50257, (B, T)); y = torch.randint(0, 50257, (B, T))
import psutil
before = psutil.Process().memory_info().rss
_, loss = model(x, y)
loss.backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"loss": loss.item(), "step_peak_mb": round((peak - before) / 2**20, 1)}))
"""


# --compile: eager vs compiled, same tree; the peak (VmHWM) is reset after a warm-up step
COMPILED_STEP = """
import json, sys, torch
from workbench.config import ModelConfig
from workbench.engine.model import GPT
torch.manual_seed(0)
B, T, compiled = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "compiled"
model = GPT(ModelConfig(n_layer=4, n_head=4, n_embd=256, block_size=T, vocab_size=50257, bias=True))
step_model = torch.compile(model, fullgraph=True) if compiled else model
x = torch.randint(0, 50257, (B, T)); y = torch.randint(0, 50257, (B, T))

def kib(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))

def step():
    _, loss = step_model(x, y)
    loss.backward()
    model.zero_grad(set_to_none=False)  # gradients stay allocated, as between training steps
    return loss.item()

step()  # compiles (or warms up): not part of the step's memory
open("/proc/self/clear_refs", "w").write("5")  # reset the peak resident set (VmHWM) to now
before = kib("VmRSS")
loss = step()
print(json.dumps({"loss": loss, "step_peak_mb": round((kib("VmHWM") - before) / 1024, 1)}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="ed9871c")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--compile", action="store_true", help="eager vs torch.compile'd step of this tree")
    args = p.parse_args()
    if args.compile:
        compare_compiled(args)
        return
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / args.base
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.base], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        trees = {"base": base, "head": REPO}
        for i in range(args.pairs):
            for side in ("base", "head") if i % 2 == 0 else ("head", "base"):
                env = {**os.environ, "PYTHONPATH": str(trees[side]), "OMP_NUM_THREADS": "1"}
                # cwd: `python -c` puts the current directory first on sys.path
                out = subprocess.run(
                    [sys.executable, "-c", STEP, str(args.batch), str(args.block)],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                    cwd=trees[side],
                )
                result = {"side": side, **json.loads(out.stdout)}
                runs.append(result)
                print(result, flush=True)
    peak = {side: min(r["step_peak_mb"] for r in runs if r["side"] == side) for side in ("base", "head")}
    logits_mb = args.batch * args.block * 50304 * 4 / 2**20
    summary = {
        "model": "n_layer 4, n_head 4, n_embd 256, vocab 50257",
        "batch": args.batch,
        "block": args.block,
        "float32_logits_mb": round(logits_mb, 1),
        "base_step_peak_mb": peak["base"],
        "head_step_peak_mb": peak["head"],
        "saved_mb": round(peak["base"] - peak["head"], 1),
    }
    print(json.dumps(summary, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{date.today().isoformat()}-loss-memory.json"
    path.write_text(json.dumps({"summary": summary, "runs": runs, "base": args.base}, indent=1) + "\n")
    print(f"wrote {path}")


def compare_compiled(args) -> None:
    runs = []
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for i in range(args.pairs):
        for side in ("eager", "compiled") if i % 2 == 0 else ("compiled", "eager"):
            out = subprocess.run(
                [sys.executable, "-c", COMPILED_STEP, str(args.batch), str(args.block), side],
                capture_output=True,
                text=True,
                env=env,
                check=True,
                cwd=REPO,
            )
            runs.append({"side": side, **json.loads(out.stdout.strip().splitlines()[-1])})
            print(runs[-1], flush=True)
    peak = {side: min(r["step_peak_mb"] for r in runs if r["side"] == side) for side in ("eager", "compiled")}
    summary = {
        "model": "n_layer 4, n_head 4, n_embd 256, vocab 50257",
        "batch": args.batch,
        "block": args.block,
        "eager_step_peak_mb": peak["eager"],
        "compiled_step_peak_mb": peak["compiled"],
        "compiled_over_eager": round(peak["compiled"] / max(peak["eager"], 1e-9), 3),
    }
    print(json.dumps(summary, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{date.today().isoformat()}-loss-memory-compile.json"
    path.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
