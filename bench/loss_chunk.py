"""One chunk of the fused loss (engine/loss.py): bytes moved, CPU time and peak memory, this tree against a base.

    python bench/loss_chunk.py [--base c77863a] [--embd 64] [--pairs 3]

The fused loss computes, for each chunk of rows, float32 logits (rows x V), a
softmax and the gradient `softmax - one_hot`, and feeds that to two matmuls.
Between the matmuls the chunk is memory-bound: what it costs is how many
times it reads and writes the (rows, V) float32 logits. This bench measures
the chunk body of the base commit's loss.py (loaded from git into a
temporary module, its ops renamed) and of this tree's, side by side:

- bytes moved per chunk, counted op by op: every aten op the chunk body runs
  (seen by a TorchDispatchMode, composite ops such as logsumexp seen as the
  ops they are made of) reads its tensor arguments and writes its outputs
  (an in-place op reads and writes its tensor; views move nothing; gather and
  scatter touch only the indexed elements). Per chunk = a call over two
  chunks minus a call over one, so the per-call work (casting the head,
  zeroing its float32 gradient) drops out. Divided by rows x V: bytes per
  logit. A kernel that reads a row more than once while it sits in cache
  (log_softmax, amax) counts once.
- CPU time per chunk: the same difference of wall times (two chunks minus
  one), median over alternating pairs (base, head, head, base, ...), and
  the profiler's self time of the ops that are not matmuls (mm, addmm).
- peak memory of a one-chunk call above its inputs and outputs, from the
  profiler's allocation events, in units of the chunk's float32 logits.
- backward: bytes the autograd backward writes (zeros materialised for the
  op's unused outputs show here).
- equality: this tree's loss and gradients against the base's, and against
  F.cross_entropy on soft-capped logits for the soft-capped case (which the
  base does not have: there it took the plain loss).

Cases: float32 (the CPU's dtype), bf16 (what autocast passes on a GPU; on a
CPU bf16 matmuls may be emulated, so read its bytes, not its time), and
float32 with logit_softcap=15 (this tree only). Writes
`results/<date>-loss-chunk.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.engine import loss as head_loss  # noqa: E402

VOCAB, PADDED = 50257, 50304
VIEWS = {"view", "_unsafe_view", "slice", "t", "transpose", "squeeze", "unsqueeze", "select", "expand", "as_strided"}
VIEWS |= {"alias", "detach", "lift_fresh", "resolve_conj", "resolve_neg", "real", "_reshape_alias", "permute"}
MATMULS = {"mm", "addmm", "addmm_", "matmul", "bmm"}


def load_base(commit: str):
    """The base commit's loss.py as a module, its custom ops in their own namespace."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:workbench/engine/loss.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    source = source.replace('"workbench::', '"workbench_base::')
    path = Path(tempfile.mkdtemp()) / "loss_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("loss_base", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class ByteCount(TorchDispatchMode):
    """Bytes each aten op reads and writes, by op name."""

    def __init__(self):
        super().__init__()
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if name not in VIEWS:
            tensors = list({id(a): a for a in args if isinstance(a, torch.Tensor)}.values())  # one read each
            outs = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, torch.Tensor)]
            if name == "logsumexp":  # at::logsumexp (ReduceOps.cpp): amax, (self - max).exp_() a temporary, sum
                moved = 6 * nbytes(args[0])
            elif name.startswith(("gather", "scatter")):
                index = next(a for a in args if isinstance(a, torch.Tensor) and a.dtype == torch.int64)
                moved = 3 * index.numel() * 4  # index, the element read, the element written
            elif name.startswith(("empty", "new_empty")):
                moved = 0  # an allocation
            elif name.startswith("new_") or name.endswith("_like"):
                moved = sum(nbytes(o) for o in outs)  # writes its output, reads nothing
            else:
                moved = sum(nbytes(a) for a in tensors) + sum(nbytes(o) for o in outs)  # out= included
            self.by_op[name] = self.by_op.get(name, 0) + moved
        return out


def call(module, x, w, t, dtype, softcap):
    """The fused op's implementation, the chunk loop itself (no autograd)."""
    fn = module._fused._init_fn
    if softcap is not None:
        return fn(x, w, t, VOCAB, dtype, softcap)
    if len(inspect.signature(fn).parameters) > 5:
        return fn(x, w, t, VOCAB, dtype, 0.0)
    return fn(x, w, t, VOCAB, dtype)


def inputs(rows: int, embd: int, device: str = "cpu"):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, embd, generator=g)
    w = torch.randn(PADDED, embd, generator=g) * embd**-0.5 * 3  # logits of std ~3
    t = torch.randint(0, VOCAB, (rows,), generator=g)
    t[::10] = -1  # ignored positions
    return x.to(device), w.to(device), t.to(device)


def bytes_per_chunk(module, rows, embd, dtype, softcap, device="cpu") -> dict[str, int]:
    counts = []
    for chunks in (1, 2):
        x, w, t = inputs(rows * chunks, embd, device)
        with ByteCount() as counter:
            call(module, x, w, t, dtype, softcap)
        counts.append(counter.by_op)
    return {op: counts[1].get(op, 0) - counts[0].get(op, 0) for op in counts[1] if counts[1][op] != counts[0].get(op)}


def cuda_path_bytes(module, rows, embd) -> dict[str, int]:
    """bf16 as on CUDA (the matmuls write float32 themselves), counted on the meta device: no data, only shapes."""
    original = module._matmul_writes_float32, torch.autocast
    module._matmul_writes_float32 = lambda device, dtype: True
    torch.autocast = lambda device_type, **kwargs: contextlib.nullcontext()  # the meta device has no autocast
    try:
        return bytes_per_chunk(module, rows, embd, torch.bfloat16, None, device="meta")
    finally:
        module._matmul_writes_float32, torch.autocast = original


def seconds(module, rows, embd, dtype, softcap, chunks, repeats=3) -> float:
    x, w, t = inputs(rows * chunks, embd)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call(module, x, w, t, dtype, softcap)
        best = min(best, time.perf_counter() - start)
    return best


def profiled(module, rows, embd, dtype, softcap, chunks):
    """(self CPU ms of the ops that are not matmuls, peak bytes allocated during the call) of one call."""
    x, w, t = inputs(rows * chunks, embd)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call(module, x, w, t, dtype, softcap)
    other_ms = sum(e.self_cpu_time_total for e in prof.events() if e.name.removeprefix("aten::") not in MATMULS) / 1000
    allocations = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    live = peak = 0
    for e in allocations:
        live += e.nbytes()
        peak = max(peak, live)
    return other_ms, peak


def backward_bytes(module, rows, embd) -> dict[str, int]:
    x, w, t = inputs(rows, embd)
    x.requires_grad_()
    w.requires_grad_()
    loss = module.linear_cross_entropy(x, w, t, VOCAB)
    with ByteCount() as counter:
        loss.backward()
    return counter.by_op


def check_equal(base, rows, embd) -> dict:
    """Loss and gradients of this tree against the base (and soft-capped against F.cross_entropy)."""
    found = {}
    for name, dtype in (("float32", None), ("bf16", torch.bfloat16)):
        results = []
        for module in (base, head_loss):
            x, w, t = inputs(3 * rows, embd)
            x.requires_grad_()
            w.requires_grad_()
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                loss = module.linear_cross_entropy(x, w, t, VOCAB)
            loss.backward()
            results.append((loss.detach(), x.grad, w.grad))
        found[name] = {
            "loss_diff": abs(results[0][0] - results[1][0]).item(),
            "grad_x_max_diff": (results[0][1] - results[1][1]).abs().max().item(),
            "grad_w_max_diff": (results[0][2] - results[1][2]).abs().max().item(),
            "grad_w_max": results[0][2].abs().max().item(),
        }
    if "softcap" in inspect.signature(head_loss.linear_cross_entropy).parameters:
        x, w, t = inputs(3 * rows, embd)
        fused = [x.clone().requires_grad_(), w.clone().requires_grad_()]
        loss = head_loss.linear_cross_entropy(*fused, t, VOCAB, softcap=15.0)
        loss.backward()
        plain = [x.clone().requires_grad_(), w.clone().requires_grad_()]
        logits = 15.0 * torch.tanh((plain[0] @ plain[1].t())[:, :VOCAB] / 15.0)
        expected = F.cross_entropy(logits, t, ignore_index=-1)
        expected.backward()
        found["softcap_vs_plain"] = {
            "loss_diff": abs(loss - expected).item(),
            "grad_x_max_diff": (fused[0].grad - plain[0].grad).abs().max().item(),
            "grad_w_max_diff": (fused[1].grad - plain[1].grad).abs().max().item(),
        }
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="c77863a")
    p.add_argument("--embd", type=int, default=64, help="C: small, so the matmuls do not hide the chunk body")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--tag", default="", help="appended to the result's file name")
    args = p.parse_args()
    torch.manual_seed(0)
    base = load_base(args.base)
    rows = head_loss.chunk_rows(10**6, PADDED, "cpu")  # the CPU's chunk: ~2**24 float32 logits
    logits = rows * PADDED
    sides = {"base": base, "head": head_loss}
    cases = {"float32": None}  # the CPU's dtype
    if "softcap" in inspect.signature(head_loss.linear_cross_entropy).parameters:
        cases["float32_softcap15"] = 15.0  # this tree only: the base took the plain loss
    result = {
        "date": date.today().isoformat(),
        "base": args.base,
        "head": _head(),
        "torch": torch.__version__,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "threads": torch.get_num_threads(),
        "rows_per_chunk": rows,
        "padded_vocab": PADDED,
        "embd": args.embd,
        "float32_logits_mb": round(logits * 4 / 2**20, 1),
        "cases": {},
    }

    def traffic(by_op):
        outside = sum(b for op, b in by_op.items() if op not in MATMULS)
        return {
            "bytes_per_logit": round(sum(by_op.values()) / logits, 2),
            "bytes_per_logit_outside_matmuls": round(outside / logits, 2),
            "bytes_per_logit_by_op": {op: round(b / logits, 2) for op, b in sorted(by_op.items())},
        }

    for case, softcap in cases.items():
        entry = {
            side: {**traffic(bytes_per_chunk(m, rows, args.embd, torch.float32, softcap)), "ms_per_chunk": []}
            for side, m in sides.items()
            if softcap is None or side == "head"
        }
        for side in entry:
            entry[side]["non_matmul_self_ms_per_chunk"] = []
        for i in range(args.pairs):
            for side in list(entry) if i % 2 == 0 else list(reversed(entry)):
                module = sides[side]
                one, two = (seconds(module, rows, args.embd, torch.float32, softcap, n) for n in (1, 2))
                entry[side]["ms_per_chunk"].append(round(1000 * (two - one), 2))
                (other1, peak), (other2, _) = (
                    profiled(module, rows, args.embd, torch.float32, softcap, n) for n in (1, 2)
                )
                entry[side]["non_matmul_self_ms_per_chunk"].append(round(other2 - other1, 2))
                entry[side]["peak_mb_one_chunk_call"] = round(peak / 2**20, 1)
                print(case, side, entry[side]["ms_per_chunk"][-1], "ms/chunk", flush=True)
        for e in entry.values():
            e["median_ms_per_chunk"] = statistics.median(e["ms_per_chunk"])
            e["min_ms_per_chunk"] = min(e["ms_per_chunk"])
            e["median_non_matmul_self_ms_per_chunk"] = statistics.median(e["non_matmul_self_ms_per_chunk"])
            e["peak_in_chunk_logits"] = round(e["peak_mb_one_chunk_call"] / result["float32_logits_mb"], 2)
        if "base" in entry:
            keys = (
                "bytes_per_logit_outside_matmuls",
                "median_ms_per_chunk",
                "min_ms_per_chunk",
                "median_non_matmul_self_ms_per_chunk",
            )
            entry["head_over_base"] = {k: round(entry["head"][k] / entry["base"][k], 3) for k in keys}
        result["cases"][case] = entry
    cuda = {side: traffic(cuda_path_bytes(m, rows, args.embd)) for side, m in sides.items()}
    cuda["head_over_base"] = {
        "bytes_per_logit_outside_matmuls": round(
            cuda["head"]["bytes_per_logit_outside_matmuls"] / cuda["base"]["bytes_per_logit_outside_matmuls"], 3
        )
    }
    result["cases"]["bf16_cuda_path_counted_on_meta"] = cuda
    result["backward_bytes_written_mb"] = {
        side: round(sum(backward_bytes(m, rows, args.embd).values()) / 2**20, 1) for side, m in sides.items()
    }
    result["equal"] = check_equal(base, rows, args.embd)
    print(json.dumps(result, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['date']}-loss-chunk{args.tag}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


def _head() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "workbench"], capture_output=True, text=True
    )
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    main()
