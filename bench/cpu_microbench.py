"""The CPU costs NOTES quotes for the modern recipe: norms, RoPE, Muon's step, bf16 matmuls.

    python bench/cpu_microbench.py [--rounds 7]

One thread (torch.set_num_threads(1)). Each case times a batch of calls; the
cases of a group run in turns, round after round, so a busy moment of the
machine falls on all of them alike. Prints and writes the median ms per call
of each case and its ratio to the group's first case; every round's figure is
kept in `results/<date>-cpu-microbench.json`.

- norm: forward + backward of a (12, 64, 128) input (shakespeare-char's CPU
  profile: batch 12, block 64, width 128): nn.LayerNorm, torch's nn.RMSNorm,
  gptbench's RMSNorm (its backward written out, engine/model.py).
- rope: one Rotary application, forward + backward, on a (12, 4, 64, 32) query.
- optimizer: one step of the profile's model under recipe=modern's architecture,
  with AdamW alone (classic's optimizer) and with Muon + AdamW (train.optimizer=muon).
- matmul: (768, 128) @ (128, 512), a step's MLP matmul at this profile, and
  1024^3, in float32 and bfloat16.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
from torch import nn

from workbench import presets
from workbench.engine.model import GPT, RMSNorm, Rotary
from workbench.engine.optim import make_optimizer

REPO = Path(__file__).resolve().parents[1]


def fwd_bwd(module: nn.Module, shape: tuple[int, ...]) -> Callable[[], None]:
    x = torch.randn(shape, requires_grad=True)

    def call() -> None:
        module(x).sum().backward()

    return call


def rope_call() -> Callable[[], None]:
    cfg = presets.resolve(presets.load("shakespeare-char"), ["recipe=modern"], "cpu").model
    rotary, q = Rotary(cfg), torch.randn(12, cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head, requires_grad=True)
    positions = torch.arange(cfg.block_size)
    return lambda: rotary(q, positions).sum().backward()


def optimizer_step(optimizer_name: str) -> Callable[[], None]:
    cfg = presets.resolve(
        presets.load("shakespeare-char"), ["recipe=modern", f"train.optimizer={optimizer_name}"], "cpu"
    )
    cfg.model.vocab_size = 65  # tiny Shakespeare's characters
    model = GPT(cfg.model)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    optimizer = make_optimizer(model, cfg.train, "cpu")
    return optimizer.step


def matmul(m: int, k: int, n: int, dtype: torch.dtype) -> Callable[[], None]:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    return lambda: torch.mm(a, b)


def groups() -> dict[str, dict[str, tuple[Callable[[], None], int]]]:
    """group -> case -> (the call, calls per timing)."""
    shape = (12, 64, 128)
    return {
        "norm": {
            "layernorm": (fwd_bwd(nn.LayerNorm(128), shape), 200),
            "torch_rmsnorm": (fwd_bwd(nn.RMSNorm(128), shape), 200),
            "gptbench_rmsnorm": (fwd_bwd(RMSNorm(128), shape), 200),
        },
        "rope": {"rotary": (rope_call(), 200)},
        "optimizer": {"adamw": (optimizer_step("adamw"), 20), "muon_adamw": (optimizer_step("muon"), 20)},
        "matmul_768x128x512": {
            "float32": (matmul(768, 128, 512, torch.float32), 200),
            "bfloat16": (matmul(768, 128, 512, torch.bfloat16), 200),
        },
        "matmul_1024^3": {
            "float32": (matmul(1024, 1024, 1024, torch.float32), 5),
            "bfloat16": (matmul(1024, 1024, 1024, torch.bfloat16), 5),
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    results = {}
    for group, cases in groups().items():
        rounds: dict[str, list[float]] = {name: [] for name in cases}
        for call, n in cases.values():  # warm-up
            for _ in range(max(1, n // 10)):
                call()
        for i in range(args.rounds):
            order = list(cases.items()) if i % 2 == 0 else list(cases.items())[::-1]
            for name, (call, n) in order:
                start = time.perf_counter()
                for _ in range(n):
                    call()
                rounds[name].append((time.perf_counter() - start) / n * 1000)
        first = statistics.median(next(iter(rounds.values())))
        results[group] = {
            name: {
                "median_ms": round(statistics.median(ms), 4),
                "ratio_to_first": round(statistics.median(ms) / first, 3),
                "rounds_ms": [round(v, 4) for v in ms],
            }
            for name, ms in rounds.items()
        }
        for name, r in results[group].items():
            print(f"{group:20s} {name:18s} {r['median_ms']:9.3f} ms  {r['ratio_to_first']:.2f}x", flush=True)
    cpu_flags = ""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        cpu_flags = " ".join(f for f in flags.split() if f.startswith(("avx", "amx")))
    except (OSError, StopIteration):
        pass
    machine = {
        "threads": 1,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": cpu_flags,
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{date.today().isoformat()}-cpu-microbench.json"
    path.write_text(json.dumps({"machine": machine, "results": results}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
