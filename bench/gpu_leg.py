"""The GPU leg: every figure the first GPU must give, in one call of at most 9 minutes.

    bash bench/gpu_leg.sh [--rehearse] [--only PART,...] [--budget SECONDS]

Runs on a bare CUDA machine that has torch, numpy, tiktoken and psutil (the
engine's own needs) and nothing else: no network, no FineWeb, no app. It
imports only `workbench.engine` and the plain modules it needs, never the CLI.
Each part runs in its own subprocess with a time box, so one that fails or
runs out of time loses only itself, and the results file is rewritten after
every part (`bench/results/<date>-<device>.json`, the raw output in `.log`
beside it). A second call with --only adds its parts to the same file.

Parts (in the order they run; see PARTS):
- throughput_*: gpt2-124m at block 1024 on random GPT-2 token shards made
  here (speed does not depend on the text), compile on, micro-batch auto and
  16, loss fused and plain, attention flash and cuDNN: steady tokens/sec
  (median of the log intervals after the first, which compiles), step time,
  MFU, peak memory, the chosen micro-batch, compile_s, and a torch.profiler
  split of one step into matmuls, attention, loss, optimizer and the rest.
- loss_kernels: the LM head + loss alone at gpt2 size (fwd + bwd, ms and peak
  memory): ours fused, plain (eager and compiled), and Liger Kernel's and
  cut-cross-entropy's fused losses where those packages are installed.
- decode: single-prompt decode tokens/sec of 256 new tokens (the checkpoint
  sampler, on the first throughput run's checkpoint).
- addition, shakespeare: wall time from the command's start to the target
  (addition: 100% on held-out and all problems; shakespeare-char: val <= 1.47).
- checks: the CUDA-only checks (bf16 autocast, fused AdamW, compile with its
  two graphs, resume on CUDA, the fused loss's float32 head gradient against
  the plain loss), and the unit tests of the loss under pytest if it is there.

`--rehearse` runs the same parts on the CPU with tiny sizes and compile off
(CPU inductor compiles take minutes) and writes `*-rehearse.json` with the
same keys; tests/integration/test_gpu_leg.py runs it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the engine of this checkout, installed or not

from workbench.runs import read_events, slug  # noqa: E402  (plain Python: no torch, no app)

GPT2_TOKENS = 50257
SHARD_TOKENS = 1 << 24  # 16M random ids: 32 MB of uint16, kept on the GPU like a small corpus

# One throughput run per row: (micro-batch, loss, attention). Runs that differ in
# loss or attention alone share most kernels: Inductor's caches serve the later compiles.
THROUGHPUT = {
    "throughput_auto_fused_flash": ("auto", "fused", "flash"),
    "throughput_16_fused_flash": ("16", "fused", "flash"),
    "throughput_auto_plain_flash": ("auto", "plain", "flash"),
    "throughput_auto_fused_cudnn": ("auto", "fused", "cudnn"),
    "throughput_16_plain_flash": ("16", "plain", "flash"),
}

# part -> seconds it may take (GPU, rehearsal), in the order they run: the issue's
# order, most wanted first. The GPU boxes add up to more than the 540 s budget:
# a part gets what is left when that is less than its box, and parts that find
# less than MIN_PART_S are skipped; the driver prints the --only call that adds them.
# A rehearsal part takes 5-15 s: its boxes only stop a hang, with room for a CI
# machine that runs other tests beside it.
PARTS = {
    "checks": (100, 120),
    "throughput_auto_fused_flash": (150, 120),
    "throughput_16_fused_flash": (90, 120),
    "throughput_auto_plain_flash": (90, 120),
    "throughput_auto_fused_cudnn": (75, 120),
    "decode": (45, 120),
    "addition": (45, 120),
    "shakespeare": (150, 120),
    "loss_kernels": (60, 120),
    "throughput_16_plain_flash": (75, 120),
}
MIN_PART_S = 20  # a part with less than this left is skipped, not started
STOP_GRACE_S = 20  # a part past its box gets this long to stop cleanly (a gpt2 last.pt is 1.5 GB)


# ----------------------------------------------------------------- sizes


def sizes(rehearse: bool) -> dict:
    """The knobs that differ between the GPU and the CPU rehearsal."""
    if rehearse:
        return {
            "gpt2": [
                "model.n_layer=2",
                "model.n_head=2",
                "model.n_embd=32",
                "model.block_size=32",
                "train.tokens_per_step=256",  # 8 sequences: auto takes 8, the fixed size 2
                "train.compile=false",
                "train.device=cpu",  # also on a GPU machine
            ],
            "fixed_batch": 2,
            "steps": 4,
            "log_every": 1,
            "shard_tokens": 1 << 16,
            "loss_rows": 256,
            "loss_vocab": 4096,
            "decode_tokens": 16,
            "device": "cpu",
            "addition": ["train.max_steps=5", "train.eval_every=5", "train.device=cpu"],
            "shakespeare": [
                "model.n_layer=2",
                "model.n_head=2",
                "model.n_embd=64",
                "model.block_size=32",
                "train.batch_size=4",
                "train.eval_steps=2",
                "train.warmup_steps=2",
                "train.target_val_loss=3.3",
                "train.max_steps=60",
                "train.eval_every=20",
                "train.device=cpu",
            ],
            "checks": ["train.compile=false", "train.device=cpu"],
        }
    return {
        # 128 sequences of 1024 per step: one micro-step at auto (when 128 fit), 8 at 16
        "gpt2": ["train.tokens_per_step=131072", "train.compile=true"],
        "fixed_batch": 16,
        "steps": 25,
        "log_every": 5,
        "shard_tokens": SHARD_TOKENS,
        "loss_rows": 16 * 1024,
        "loss_vocab": 50304,
        "decode_tokens": 256,
        "device": "cuda",
        "addition": ["train.target_accuracy=1.0", "train.eval_every=50"],
        "shakespeare": ["train.target_val_loss=1.47"],
        "checks": ["train.device=cuda", "train.compile=true"],
    }


# ------------------------------------------------------------ the driver


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rehearse", action="store_true", help="CPU, tiny sizes, compile off")
    p.add_argument("--only", default="", help="comma-separated parts (default: all)")
    p.add_argument("--budget", type=float, default=None, help="seconds for all parts (GPU 540, rehearsal 900)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "gptbench-gpu-leg",
        help="run directories (checkpoints: GBs) and shards, outside the repository",
    )
    p.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part in this process
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    work = args.work
    if args.part:
        result = run_part(args.part, args.rehearse, work)
        args.result.write_text(json.dumps(result, indent=1) + "\n")
        return 0
    return drive(args, work)


def drive(args, work: Path) -> int:
    start = time.monotonic()
    budget = args.budget or (900 if args.rehearse else 540)
    parts = [name for name in PARTS if not args.only or name in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - set(PARTS)
    if unknown:
        print(f"unknown parts {sorted(unknown)}; parts are {', '.join(PARTS)}", file=sys.stderr)
        return 2
    env = environment(args.rehearse)
    if not args.rehearse and env["device_name"] == "cpu":
        print("no CUDA GPU is visible; `bash bench/gpu_leg.sh --rehearse` runs the CPU rehearsal", file=sys.stderr)
        return 2
    device = env["device_name"]
    stamp = date.today().isoformat()
    base = args.out / f"{stamp}-{slug(device)}{'-rehearse' if args.rehearse else ''}"
    args.out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    results_path, log_path = base.with_suffix(".json"), base.with_suffix(".log")
    report = json.loads(results_path.read_text()) if results_path.exists() else {}
    report.update(env)
    make_shards(work / "shards", sizes(args.rehearse)["shard_tokens"])
    with open(log_path, "a", encoding="utf-8") as log:
        for name in parts:
            left = budget - (time.monotonic() - start)
            box = min(PARTS[name][1 if args.rehearse else 0], left)
            if box < MIN_PART_S:
                report[name] = {"skipped": f"out of time ({left:.0f} s of the {budget:.0f} s budget left)"}
            else:
                report[name] = run_isolated(name, args.rehearse, work, box, log)
            print(f"{name}: {brief(report[name])}", flush=True)
            report["wall_s"] = round(time.monotonic() - start, 1)
            results_path.write_text(json.dumps(report, indent=1) + "\n")  # after every part
    report["compile_s_ratio"] = compile_ratio(report)
    results_path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {results_path} and {log_path}")
    skipped = [name for name in parts if "skipped" in report[name]]
    if skipped:
        print(f"out of time for {len(skipped)} parts; add them with: bash bench/gpu_leg.sh --only {','.join(skipped)}")
    return 0


def run_isolated(name: str, rehearse: bool, work: Path, box: float, log) -> dict:
    """One part in a subprocess within `box` seconds; whatever it left is summarised either way."""
    result_file = work / f"{name}.result.json"
    result_file.unlink(missing_ok=True)
    argv = [sys.executable, __file__, "--part", name, "--result", str(result_file), "--work", str(work)]
    argv += ["--rehearse"] if rehearse else []
    log.write(f"\n===== {name} (box {box:.0f} s): {' '.join(argv)}\n")
    log.flush()
    started = time.time()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        code = proc.wait(timeout=box)
    except subprocess.TimeoutExpired:
        code = None
        proc.terminate()  # a trainer stops at its next boundary and writes run_finished
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    run_dir = work / name
    if not result and (run_dir / "events.jsonl").exists():
        result = summarize_run(run_dir, started)  # cut short: what its events say so far
    result["part_s"] = round(time.time() - started, 1)
    if code is None:
        result["error"] = f"ran past its {box:.0f} s box"
    elif code != 0:
        result["error"] = f"exit {code}; the .log has its output"
    return result


# asked of a subprocess: the driver holds no CUDA context (memory) while the parts run
ENVIRONMENT = """
import json, sys, torch
gpu = torch.cuda.is_available() and sys.argv[1] == "gpu"
env = {"device_name": torch.cuda.get_device_name() if gpu else "cpu", "torch": torch.__version__,
       "cuda": torch.version.cuda, "python": sys.version.split()[0]}
if gpu:
    env["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    env["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
print(json.dumps(env))
"""


def environment(rehearse: bool) -> dict:
    argv = [sys.executable, "-c", ENVIRONMENT, "cpu" if rehearse else "gpu"]
    asked = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    return {
        "date": date.today().isoformat(),
        "rehearse": rehearse,
        **asked,
        "git_sha": git_sha(),
        "optional_packages": {name: installed(name) for name in ("liger_kernel", "cut_cross_entropy", "pytest")},
    }


def compile_ratio(report: dict) -> float | None:
    """compile_s at micro-batch 16 over auto (same model, same tokens_per_step): ~1 when the graph is bounded."""
    auto = report.get("throughput_auto_fused_flash", {}).get("compile_s")
    fixed = report.get("throughput_16_fused_flash", {}).get("compile_s")
    return round(max(auto, fixed) / min(auto, fixed), 2) if auto and fixed else None


# --------------------------------------------------------------- the parts


def run_part(name: str, rehearse: bool, work: Path) -> dict:
    s = sizes(rehearse)
    run_dir = work / name
    if name in THROUGHPUT:
        return throughput(run_dir, *THROUGHPUT[name], s, work / "shards", rehearse)
    if name == "loss_kernels":
        return loss_kernels(s["loss_rows"], s["loss_vocab"], rehearse)
    if name == "decode":
        return decode(work / "throughput_auto_fused_flash", s["decode_tokens"], s["device"])
    if name == "addition":
        return to_target(run_dir, "addition", s["addition"])
    if name == "shakespeare":
        return to_target(run_dir, "shakespeare-char", s["shakespeare"])
    if name == "checks":
        return checks(run_dir, s["checks"], rehearse, work / "shards")
    raise SystemExit(f"unknown part {name}")


def throughput(run_dir: Path, batch: str, loss: str, attention: str, s: dict, shards: Path, rehearse: bool) -> dict:
    batch = str(s["fixed_batch"]) if batch != "auto" else batch
    overrides = [
        *s["gpt2"],
        f"data.path={shards}",
        f"train.batch_size={batch}",
        f"train.loss={loss}",
        f"train.max_steps={s['steps']}",
        f"train.log_every={s['log_every']}",
        "train.warmup_steps=2",
        "train.eval_every=1000000",
        "train.eval_steps=1",
        "train.eval_tasks=",
    ]
    started = time.time()
    backend = attention if not rehearse or attention == "flash" else "math"  # no cuDNN on a CPU
    profile = train(run_dir, "gpt2-124m", overrides, attention=backend, profile=True)
    result = summarize_run(run_dir, started)
    result.update(attention=attention, attention_backend_used=backend, profile=profile)
    return result


def to_target(run_dir: Path, preset: str, overrides: list[str]) -> dict:
    started = time.time()
    train(run_dir, preset, overrides)
    return summarize_run(run_dir, started)


def summarize_run(run_dir: Path, started: float) -> dict:
    """The figures of a training run, from its events (also of a run cut short)."""
    events = read_events(run_dir)
    of = lambda kind: [e for e in events if e["event"] == kind]  # noqa: E731
    run = of("run_started")[:1]
    steps, evals, finished = of("step"), of("eval"), of("run_finished")[-1:]
    out: dict = {"run_dir": str(run_dir), "steps_done": steps[-1]["step"] if steps else 0}
    if run:
        r = run[0]
        out.update(
            micro_batch=r.get("micro_batch", r["config"]["train"]["batch_size"]),
            grad_accum=r.get("grad_accum"),
            tokens_per_step=r["tokens_per_step"],
            loss=r.get("loss"),
            dtype=r["dtype"],
            compile=r["compile"],
            params=r["params"],
        )
        out["micro_batch_how"] = next((e["message"] for e in of("log") if e["message"].startswith("micro-batch")), None)
    # The trainer times from the end of step 1 (the compile, the warm-up): an interval of that step
    # alone has no tokens/sec. The first timed interval still holds the allocator's warm-up: skip it too.
    steady = [e for e in steps if e.get("tokens_per_sec") is not None][1:]
    if steady:
        tok_s = statistics.median(e["tokens_per_sec"] for e in steady)
        mfus = [e["mfu"] for e in steady if e.get("mfu") is not None]
        out.update(
            tokens_per_sec=round(tok_s),
            step_ms=round(1000 * out["tokens_per_step"] / tok_s, 2),
            mfu=round(statistics.median(mfus), 4) if mfus else None,
            intervals_timed=len(steady),
        )
    mems = [e["gpu_mem_gb"] for e in steps if "gpu_mem_gb" in e]
    out["peak_mem_gb"] = max(mems) if mems else None
    if finished:
        f = finished[0]
        out.update(reason=f["reason"], compile_s=f.get("compile_s"), peak_rss_gb=f.get("peak_rss_gb"))
        if f.get("gpu_peak_gb") is not None:
            out["peak_mem_gb"] = f["gpu_peak_gb"]
    hit = next((e for e in of("log") if e["message"].startswith("target reached")), None)
    out["target_reached"] = hit is not None
    out["time_to_target_s"] = round(hit["t"] - started, 1) if hit else None
    if evals:
        out.update(val_loss=evals[-1]["val_loss"], metrics=evals[-1]["metrics"], eval_step=evals[-1]["step"])
        out["best_val_loss"] = min(e["val_loss"] for e in evals)
    out["elapsed_s"] = round((events[-1]["t"] if events else started) - started, 1)
    return out


def decode(run_dir: Path, new_tokens: int, device: str) -> dict:
    """The checkpoint sampler (`python -m workbench.engine.sampler`), one prompt, KV cache, as users run it."""
    argv = [sys.executable, "-m", "workbench.engine.sampler", "--run-dir", str(run_dir), "--checkpoint", "last"]
    argv += ["--device", device]
    argv += ["--prompt", "Hello, I'm a language model,", "--max-new-tokens", str(new_tokens)]
    argv += ["--temperature", "1.0", "--top-k", "0", "--seed", "0", "--num-samples", "2"]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    print(out.stderr[-4000:], file=sys.stderr)
    done = [json.loads(line) for line in out.stdout.splitlines() if '"done":true' in line.replace(" ", "")]
    if out.returncode or not done:
        raise SystemExit(f"the sampler failed (exit {out.returncode}): {out.stdout[-500:]}")
    # two samples in one process: the second has a warm allocator and warm kernels
    return {
        "new_tokens": done[-1].get("tokens"),
        "decode_tokens_per_sec": round(done[-1]["tokens_per_sec"], 1),
        "first_sample_tokens_per_sec": round(done[0]["tokens_per_sec"], 1),
    }


# ------------------------------------------------------------ training runs


def train(run_dir: Path, preset: str, overrides: list[str], attention: str | None = None, profile: bool = False):
    """A training run in this process, as the trainer process runs it, under one attention backend.

    In this process rather than `python -m workbench.engine.worker` so the
    attention backend can be fixed around it and one more step profiled after.
    Returns the profile table (profile=True) or None.
    """
    import torch

    from workbench import presets
    from workbench.config import estimate_params
    from workbench.engine.device import detect_kind, setup_device
    from workbench.engine.distributed import init_world
    from workbench.engine.event_log import EventLog
    from workbench.engine.trainer import Trainer
    from workbench.engine.worker import write_run_files

    cfg = presets.resolve_run(preset, None, overrides, detect_kind())
    setup = setup_device(cfg.train, 0, estimate_params(cfg.model))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "events.jsonl").unlink(missing_ok=True)  # a rerun replaces the last one's run
    log = EventLog(run_dir, sys.stdout)
    table = None
    with attention_backend(attention):
        trainer = Trainer(cfg, run_dir, setup, init_world(setup.kind), log)
        write_run_files(trainer)
        if setup.kind == "cuda":  # memory figures of the run, not of the micro-batch probe
            torch.cuda.reset_peak_memory_stats(setup.device)
        reason = trainer.run()
        if profile:
            table = profile_step(trainer)
            (run_dir / "profile.json").write_text(json.dumps(table, indent=1) + "\n")
        trainer.finish(reason)
        trainer.close()
    log.close()
    return table


def attention_backend(name: str | None):
    from contextlib import nullcontext

    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    return sdpa_kernel([backends[name]]) if name else nullcontext()


# profile rows, matched top-down on op names (lower case, no underscores): the
# first match claims the op with all it ran; the loss comes before matmuls (it holds its own)
PROFILE_GROUPS = {
    "loss": ("linearcrossentropy", "crossentropy", "nllloss", "logsoftmax"),
    "attention": ("scaleddotproduct", "flashattention", "cudnnattention", "efficientattention", "fmha"),
    "optimizer": ("optimizer.", "adamw", "foreach", "clipgradnorm"),
    "matmuls": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm"),
}


def profile_step(trainer) -> dict:
    """One training step under torch.profiler, its device time split into PROFILE_GROUPS and the rest."""
    from torch.profiler import ProfilerActivity, profile

    cuda = trainer.setup.kind == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    trainer._train_step()  # one more step first, outside the profile: the graphs are warm
    trainer._sync_device()
    with profile(activities=activities) as prof:
        trainer._train_step()
        trainer._sync_device()
    trainer.pending.clear()
    total_of = (lambda e: e.device_time_total) if cuda else (lambda e: e.cpu_time_total)
    self_of = (lambda e: e.self_device_time_total) if cuda else (lambda e: e.self_cpu_time_total)
    spent = dict.fromkeys([*PROFILE_GROUPS, "rest"], 0.0)
    ops: dict[str, set] = {group: set() for group in PROFILE_GROUPS}

    def claim(event) -> None:
        name = event.name.lower().replace("_", "")
        for group, keys in PROFILE_GROUPS.items():
            if any(key in name for key in keys):
                spent[group] += total_of(event)
                ops[group].add(event.name)
                return
        spent["rest"] += self_of(event)
        for child in event.cpu_children:
            claim(child)

    for event in prof.events():
        if event.cpu_parent is None:
            claim(event)
    total = sum(spent.values()) or 1.0
    return {
        "clock": "device" if cuda else "cpu",
        "step_ms": round(total / 1000, 2),
        "ms": {k: round(v / 1000, 2) for k, v in spent.items()},
        "share": {k: round(v / total, 3) for k, v in spent.items()},
        "ops": {k: sorted(v)[:8] for k, v in ops.items()},
    }


# ------------------------------------------------------------ loss kernels


def loss_kernels(rows: int, vocab: int, rehearse: bool) -> dict:
    """LM head + loss, forward and backward, at gpt2's width: ms and peak memory of each implementation."""
    import torch

    from workbench.engine import loss as ours

    cuda = torch.cuda.is_available() and not rehearse
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    torch.manual_seed(0)
    x = torch.randn(rows, 768, device=device, requires_grad=True)
    w = (torch.randn(vocab, 768, device=device) * 0.02).requires_grad_()
    t = torch.randint(0, min(vocab, GPT2_TOKENS), (rows,), device=device)
    real_vocab = min(vocab, GPT2_TOKENS)

    def fused():
        return ours.linear_cross_entropy(x, w, t, real_vocab)

    def plain():
        return ours.plain_cross_entropy(x @ w.t(), t, real_vocab)

    impls = {"fused": fused, "plain": plain}
    if not rehearse:  # CPU inductor compiles take minutes
        impls["plain_compiled"] = torch.compile(plain, fullgraph=True)
        impls["fused_compiled"] = torch.compile(fused, fullgraph=True)
    impls.update(optional_losses(x, w, t, real_vocab))
    results = {"rows": rows, "vocab": vocab, "dtype": str(dtype).removeprefix("torch."), "device": device.type}
    reference = None
    for name, fn in impls.items():
        if isinstance(fn, str):
            results[name] = {"skipped": fn}
            continue
        try:
            results[name] = time_loss(fn, x, w, dtype, device)
        except Exception as exc:  # an optional package's API may have moved: say so, go on
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        reference = reference if reference is not None else results[name]["loss"]
        results[name]["loss_minus_fused"] = round(results[name]["loss"] - reference, 5)
    return results


def optional_losses(x, w, t, vocab: int) -> dict:
    """Liger Kernel's and cut-cross-entropy's fused losses, where installed (CUDA only)."""
    impls = {}
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        liger = LigerFusedLinearCrossEntropyLoss(ignore_index=-1)
        impls["liger"] = lambda: liger(w[:vocab], x, t)
    except ImportError:
        impls["liger"] = "liger-kernel is not installed"
    try:
        from cut_cross_entropy import linear_cross_entropy as cce

        impls["cce"] = lambda: cce(x.bfloat16(), w[:vocab].bfloat16(), t, ignore_index=-1)
    except ImportError:
        impls["cce"] = "cut-cross-entropy is not installed"
    return impls


def time_loss(fn, x, w, dtype, device, reps: int = 5) -> dict:
    import torch

    cuda = device.type == "cuda"

    def once():
        x.grad = w.grad = None
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = fn()
        loss.backward()
        return loss

    once()  # warm-up (and the compile, for the compiled ones)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    start = time.perf_counter()
    for _ in range(reps):
        loss = once()
    if cuda:
        torch.cuda.synchronize()
    ms = 1000 * (time.perf_counter() - start) / reps
    peak = (torch.cuda.max_memory_allocated() - before) / 2**30 if cuda else None
    return {"ms": round(ms, 3), "peak_extra_gb": round(peak, 3) if peak is not None else None, "loss": loss.item()}


# ------------------------------------------------------------------ checks


def checks(run_dir: Path, device_overrides: list[str], rehearse: bool, shards: Path) -> dict:
    """The CUDA-only checks: a compiled bf16 run with fused AdamW, its resume, the loss on the device.
    (The micro-batch probe shows in throughput_auto_*: micro_batch_how.) On the random-id shards:
    they need no download and no cache."""
    import torch

    from workbench.engine import loss as ours

    out: dict = {}
    tiny = [
        "model.n_layer=2",
        "model.n_head=2",
        "model.n_embd=64",
        "model.block_size=32",
        f"data.path={shards}",
        "train.batch_size=2",
        "train.tokens_per_step=64",
        "train.eval_steps=2",
        "train.eval_tasks=",
        "train.warmup_steps=2",
        "train.log_every=5",
        "train.eval_every=5",
        *device_overrides,
    ]
    train(run_dir, "gpt2-124m", tiny + ["train.max_steps=10"])
    first = read_events(run_dir)
    started = next(e for e in first if e["event"] == "run_started")
    finished = [e for e in first if e["event"] == "run_finished"][-1]
    expected_dtype = "float32" if rehearse else "bfloat16"
    out["autocast_dtype"] = {"ok": started["dtype"] == expected_dtype, "dtype": started["dtype"]}
    compiled_ok = (
        started["compile"] is False
        if rehearse
        else started["compile"] is True
        and finished.get("compiled_graphs") == 2
        and (finished.get("compile_s") or 0) > 0
    )
    out["compile"] = {
        "ok": compiled_ok,
        "compiled_graphs": finished.get("compiled_graphs"),
        "compile_s": finished.get("compile_s"),
    }
    out["fused_adamw"] = fused_adamw(run_dir, rehearse)
    out["resume"] = resume(run_dir, 20)
    out["loss_on_device"] = loss_on_device(ours, torch, rehearse)
    out["pytest"] = unit_tests() if not rehearse else {"skipped": "rehearsal: CI runs the unit tests"}
    out["all_ok"] = all(v.get("ok", True) for v in out.values() if isinstance(v, dict))
    return out


def fused_adamw(run_dir: Path, rehearse: bool) -> dict:
    """The optimizer a CUDA run builds: torch's fused AdamW (one kernel for all parameters)."""
    from workbench.config import Config
    from workbench.engine.model import GPT
    from workbench.engine.optim import make_optimizer

    cfg = Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    kind = "cpu" if rehearse else "cuda"
    model = GPT(cfg.model).to(kind)
    opt = make_optimizer(model, cfg.train, kind)
    fused = bool(opt.defaults.get("fused"))
    return {"ok": fused, "fused": fused}


def resume(run_dir: Path, steps: int) -> dict:
    """Continue the run from its last.pt to `steps`, as `gptbench run --resume` does."""
    from workbench.config import estimate_params
    from workbench.engine.device import setup_device
    from workbench.engine.distributed import init_world
    from workbench.engine.event_log import EventLog
    from workbench.engine.resume import plan_resume
    from workbench.engine.trainer import Trainer

    cfg, ckpt = plan_resume(run_dir, [f"train.max_steps={steps}"])
    setup = setup_device(cfg.train, 0, estimate_params(cfg.model))
    log = EventLog(run_dir, sys.stdout)
    trainer = Trainer(cfg, run_dir, setup, init_world(setup.kind), log, ckpt)
    trainer.finish(trainer.run())
    trainer.close()
    log.close()
    events = read_events(run_dir)
    last = [e for e in events if e["event"] == "run_finished"][-1]
    losses = [e["loss"] for e in events if e["event"] == "step"]
    finite = all(isinstance(v, float) and v == v for v in losses)
    return {"ok": last["step"] == steps and finite, "step": last["step"], "last_loss": losses[-1] if losses else None}


def loss_on_device(ours, torch, rehearse: bool) -> dict:
    """Fused against plain at gpt2's vocabulary on the device: loss and both gradients."""
    device = torch.device("cpu" if rehearse else "cuda")
    dtype = torch.float32 if rehearse else torch.bfloat16
    torch.manual_seed(0)
    rows = 3000 if not rehearse else 300
    x = torch.randn(rows, 64, device=device, requires_grad=True)
    w = (torch.randn(50304, 64, device=device) * 0.02).requires_grad_()
    t = torch.randint(0, GPT2_TOKENS, (rows,), device=device)
    grads = {}
    for name in ("fused", "plain"):
        x.grad = w.grad = None
        with torch.autocast(device.type, dtype=dtype, enabled=not rehearse):
            loss = (
                ours.linear_cross_entropy(x, w, t, GPT2_TOKENS)
                if name == "fused"
                else ours.plain_cross_entropy(x @ w.t(), t, GPT2_TOKENS)
            )
        loss.backward()
        grads[name] = (loss.item(), x.grad.clone(), w.grad.clone())
    (lf, xf, wf), (lp, xp, wp) = grads["fused"], grads["plain"]

    def rel(a, b):
        return ((a - b).norm() / b.norm()).item()

    float32_out = ours._matmul_writes_float32(device, dtype)
    out = {
        "loss_diff": abs(lf - lp),
        "grad_x_rel_err": rel(xf, xp),
        "grad_w_rel_err": rel(wf, wp),
        "head_grad_float32_by_matmul": float32_out,
        "grad_w_dtype": str(wf.dtype).removeprefix("torch."),
    }
    out["ok"] = out["loss_diff"] < 2e-2 and out["grad_w_rel_err"] < 2e-2 and (float32_out or rehearse)
    return out


def unit_tests() -> dict:
    """The loss's CUDA unit tests, when pytest is installed."""
    if not installed("pytest"):
        return {"skipped": "pytest is not installed"}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_loss.py", "-k", "cuda"]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    print(out.stdout[-3000:], file=sys.stderr)
    return {"ok": out.returncode == 0, "summary": (out.stdout.strip().splitlines() or [""])[-1]}


# ----------------------------------------------------------------- helpers


def make_shards(folder: Path, tokens: int) -> None:
    """nanoGPT-style train.bin/val.bin of random GPT-2 ids: a corpus without a download."""
    import numpy as np

    if (folder / "val.bin").exists() and (folder / "train.bin").stat().st_size == 2 * tokens:
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, count in (("train.bin", tokens), ("val.bin", tokens // 16)):
        ids = rng.integers(0, GPT2_TOKENS, count, dtype=np.uint16)
        ids[:2] = 50256  # <|endoftext|> first: never mistaken for an llm.c header
        ids.tofile(folder / name)


def brief(result: dict) -> str:
    keys = ("error", "skipped", "tokens_per_sec", "time_to_target_s", "decode_tokens_per_sec", "all_ok", "part_s")
    return ", ".join(f"{k}={result[k]}" for k in keys if k in result)


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def git_sha() -> str | None:
    out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False)
    return out.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
