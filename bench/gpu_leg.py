"""The GPU leg: every figure the first GPU must give, in one call of about 7 minutes.

    bash bench/gpu_leg.sh [--rehearse] [--text PATH] [--only PART,...] [--budget SECONDS] [--out DIR]

Runs on a bare CUDA machine, from a copy of the tree that was never installed,
with torch, numpy, tiktoken and psutil (the engine's own needs) and nothing
else: no network, no git, no HOME, no ../shared. Tiny Shakespeare travels
with the call (--text). It imports only `workbench.engine` and the plain
modules it needs, never the CLI.

Each part runs in a subprocess of its own process group, within a time box.
A part stops itself at the end of its box (a trainer at its next boundary,
with its figures so far); one still running after STOP_GRACE_S gets SIGTERM,
then SIGKILL, with every process it started (samplers, pytest, compile
workers), so nothing holds GPU memory into the next part's micro-batch probe.
Each part gets its own HOME, empty compile caches (cold compiles: compile_s
compares like with like) and config dir under --work. A part rewrites its
result file after every check (atomically); the driver rewrites the results
file (`<out>/<date>-<device>.json`, the raw output in `.log` beside it) after
every part, and a part that fails, hangs or is killed costs only itself. The
exit status is 0 when every part that ran is ok. A second call with --only adds
its parts to the same file.

Parts, most wanted first (PARTS; those the budget leaves out are listed with
the --only call that adds them):
- checks: bf16 autocast, compile with its two graphs, fused AdamW, resume on
  the device, the fused loss against the plain one at gpt2's vocabulary.
- loss_kernels: the LM head + loss alone at gpt2 size (fwd + bwd, ms and peak
  memory): ours fused, plain (eager and compiled), Liger Kernel's and
  cut-cross-entropy's where installed; and which loss train.loss=auto takes
  on CUDA, by the rule in workbench/engine/loss.py, beside the fastest here.
- throughput_*: gpt2-124m at block 1024 on random GPT-2 token shards made
  here, compile on: micro-batch auto (fused and plain loss) and 16, flash
  attention (cuDNN last, if time is left): steady tokens/sec, step time, MFU,
  peak memory, the chosen micro-batch, compile_s, a torch.profiler split.
- decode: tokens/sec of one prompt on a gpt2-124m the part makes itself,
  eager (one answer) and served (`--serve`: a CUDA graph on CUDA).
- addition, shakespeare: time to the target (addition: 100% on held-out;
  shakespeare-char: val <= 1.47), else the best val reached and when.
- pytest: the CUDA tests (loss, engine), in one process.

`--rehearse` runs the same parts on the CPU with tiny sizes and compile off
(CPU inductor compiles take minutes) and writes `*-cpu-rehearse.json` with
the same keys; tests/integration/test_gpu_leg.py runs it from a bare copy.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the engine of this checkout, installed or not

from workbench.runs import read_events, slug  # noqa: E402  (plain Python: no torch, no app)

GPT2_TOKENS = 50257
SHARD_TOKENS = 1 << 24  # 16M random ids: 32 MB of uint16, kept on the GPU like a small corpus
SHAKESPEARE_IN_TREE = ("shared/data/tinyshakespeare/input.txt", "../shared/data/tinyshakespeare/input.txt")

# One throughput run per row: (micro-batch, loss, attention).
THROUGHPUT = {
    "throughput_auto_fused_flash": ("auto", "fused", "flash"),
    "throughput_auto_plain_flash": ("auto", "plain", "flash"),
    "throughput_16_fused_flash": ("16", "fused", "flash"),
    "throughput_auto_fused_cudnn": ("auto", "fused", "cudnn"),
}

# part -> its box in seconds (GPU, rehearsal), in the order they run, most wanted first. GPU:
# estimates with a margin (a throughput part is mostly its cold gpt2-124m compile, about a
# minute). A part runs only when its whole box fits in what is left of the budget (so one
# that runs is not cut short by the budget); those left out are skipped, and the driver prints
# the --only call that adds them. A rehearsal part takes 5-50 s: its boxes only stop a hang.
PARTS = {
    "checks": (90, 120),
    "loss_kernels": (45, 120),
    "throughput_auto_fused_flash": (90, 120),
    "throughput_auto_plain_flash": (90, 120),
    "throughput_16_fused_flash": (90, 120),
    "decode": (90, 120),  # a gpt2 step of its own, eager and served (the CUDA graph compiles)
    "addition": (45, 120),
    "shakespeare": (120, 120),
    "pytest": (180, 120),  # three of the CUDA tests compile (cold)
    "throughput_auto_fused_cudnn": (90, 120),
}
# GPU: 400 s of parts and ~20 s of set-up: 7 minutes, so that two calls and the machine's start
# fit the 15 minutes a GPU is lent. The rehearsal's takes 5 minutes on 2 busy cores.
BUDGET_S = (400, 900)
STOP_GRACE_S = 15  # after its box, a part has this long to finish (a trainer saves; gpt2's last.pt is 1.5 GB)
KILL_GRACE_S = 5  # after SIGTERM, before SIGKILL
TO_TARGET = ("addition", "shakespeare")  # parts whose box may end them: they report how far they got


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
                "train.tokens_per_step=256",  # 8 sequences: auto takes up to 8, the fixed size 2
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
            "decode_step": ["train.tokens_per_step=32"],
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
        "steps": 15,
        "log_every": 5,
        "shard_tokens": SHARD_TOKENS,
        "loss_rows": 16 * 1024,
        "loss_vocab": 50304,
        "decode_tokens": 256,
        "decode_step": ["train.tokens_per_step=1024"],
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
    p.add_argument("--budget", type=float, default=None, help=f"seconds for all parts (GPU {BUDGET_S[0]})")
    p.add_argument(
        "--text", type=Path, help="tiny Shakespeare's input.txt (default: shared/data/ in or beside the tree)"
    )
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "gptbench-gpu-leg",
        help="run directories (checkpoints: GBs), shards, caches; outside the repository",
    )
    p.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part in this process
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)  # unix time the part stops itself at
    args = p.parse_args()
    if args.part:
        return part_main(args)
    return drive(args)


def drive(args) -> int:
    start = time.monotonic()
    budget = args.budget or BUDGET_S[args.rehearse]
    parts = [name for name in PARTS if not args.only or name in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - set(PARTS)
    if unknown:
        print(f"unknown parts {sorted(unknown)}; parts are {', '.join(PARTS)}", file=sys.stderr)
        return 2
    env = environment(args.rehearse)
    if not args.rehearse and env["device_name"] == "cpu":
        print("no CUDA GPU is visible; `bash bench/gpu_leg.sh --rehearse` runs the CPU rehearsal", file=sys.stderr)
        return 2
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env["text"] = seed_text(args.text, work / "cache")
    base = args.out / f"{date.today().isoformat()}-{slug(env['device_name'])}{'-rehearse' if args.rehearse else ''}"
    args.out.mkdir(parents=True, exist_ok=True)
    results_path, log_path = base.with_suffix(".json"), base.with_suffix(".log")
    report = read_report(results_path)
    report.update(env, budget_s=budget)
    make_shards(work / "shards", sizes(args.rehearse)["shard_tokens"])
    ran = []
    with open(log_path, "a", encoding="utf-8") as log:
        for name in parts:
            left = budget - (time.monotonic() - start)
            box = PARTS[name][args.rehearse]
            if box + STOP_GRACE_S + KILL_GRACE_S > left:
                report[name] = {"skipped": f"out of time: its {box} s box, {left:.0f} s of the {budget:.0f} s left"}
            else:
                try:
                    report[name] = run_isolated(name, args.rehearse, work, box, log)
                except Exception as exc:  # the driver's own trouble with one part: that part's loss only
                    report[name] = {"error": f"the driver: {type(exc).__name__}: {exc}"[:500]}
                report[name]["ok"] = part_ok(name, report[name])
                ran.append(name)
            print(f"{name}: {brief(report[name])}", flush=True)
            report["wall_s"] = round(time.monotonic() - start, 1)
            report["compile_s_ratio"] = compile_ratio(report)
            write_json(results_path, report)  # after every part
    print(f"wrote {results_path} and {log_path}")
    skipped = [name for name in parts if "skipped" in report[name]]
    if skipped:
        print(f"out of time for {len(skipped)} parts; add them with: bash bench/gpu_leg.sh --only {','.join(skipped)}")
    failed = [name for name in ran if not report[name]["ok"]]
    if failed:
        print(f"not ok: {', '.join(failed)} (the .log has their output)", file=sys.stderr)
    return 1 if failed else 0


def part_ok(name: str, result: dict) -> bool:
    """A part is ok when it ran to its end without an error (checks: every check passed)."""
    return "error" not in result and (name != "checks" or result.get("all_ok") is True)


def run_isolated(name: str, rehearse: bool, work: Path, box: float, log) -> dict:
    """One part in a subprocess and process group of its own, within `box` seconds (then STOP_GRACE_S
    for it to end itself); whatever it left is summarised either way, and nothing it started outlives it."""
    result_file = work / f"{name}.result.json"
    result_file.unlink(missing_ok=True)
    started = time.time()
    argv = [sys.executable, __file__, "--part", name, "--result", str(result_file), "--work", str(work)]
    argv += ["--deadline", str(started + box)] + (["--rehearse"] if rehearse else [])
    log.write(f"\n===== {name} (box {box:.0f} s): {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=part_env(name, work), start_new_session=True
    )
    killed = None
    try:
        code = proc.wait(timeout=box + STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        killed = "SIGTERM"
        signal_group(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            killed = "SIGKILL"
            signal_group(proc.pid, signal.SIGKILL)
            code = proc.wait()
    signal_group(proc.pid, signal.SIGKILL)  # what the part left running (compile workers, a sampler)
    result = read_report(result_file)
    run_dir = work / name
    if (name in TO_TARGET or name in THROUGHPUT) and (run_dir / "events.jsonl").exists():
        result = {**summarize_run(run_dir, started), **result}  # cut short or not: what its events say
    result["part_s"] = round(time.time() - started, 1)
    if killed:
        result["error"] = f"still running {STOP_GRACE_S} s after its {box:.0f} s box: ended with {killed}"
    elif code == -signal.SIGTERM:  # its own, at the end of its box, before a trainer could take it as a stop
        result["error"] = f"ended at the end of its {box:.0f} s box; the .log has its output"
    elif code != 0:
        result["error"] = result.get("error") or f"exit {code}; the .log has its output"
    return result


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the part leads its group: start_new_session
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def part_env(name: str, work: Path) -> dict:
    """The part's environment: a writable HOME and config dir of the leg's own (the machine may
    have none), the shared data cache, and compile caches of its own, empty: cold compiles."""
    part = work / "env" / name
    for folder in ("home", "inductor", "triton", "nv"):
        clear(part / folder)
    return {
        **os.environ,
        "HOME": str(part / "home"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "XDG_CONFIG_HOME": str(part / "home" / ".config"),
        "TORCHINDUCTOR_CACHE_DIR": str(part / "inductor"),
        "TRITON_CACHE_DIR": str(part / "triton"),
        "TRITON_HOME": str(part / "triton"),
        "CUDA_CACHE_PATH": str(part / "nv"),
        "PYTHONUNBUFFERED": "1",
    }


def clear(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def seed_text(text: Path | None, cache: Path) -> dict:
    """Tiny Shakespeare into the leg's gptbench cache (the data module reads it there, offline)."""
    import shutil

    candidates = [text] if text else [REPO / path for path in SHAKESPEARE_IN_TREE]
    source = next((path for path in candidates if path.is_file()), None)
    target = cache / "gptbench" / "tinyshakespeare" / "input.txt"
    if source is None:
        tried = ", ".join(str(path) for path in candidates)
        return {"found": False, "note": f"no tiny Shakespeare at {tried}: the shakespeare part fails; pass --text"}
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return {"found": True, "source": str(source), "bytes": target.stat().st_size}


def read_report(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_json(path: Path, obj: dict) -> None:
    """Atomically: a reader (or a kill mid-write) sees the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


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
    asked = subprocess.run(argv, capture_output=True, text=True, check=False)
    if asked.returncode:
        raise SystemExit(f"gpu_leg: torch does not load here: {asked.stderr.strip()[-800:]}")
    home = os.environ.get("HOME")
    return {
        "date": date.today().isoformat(),
        "rehearse": rehearse,
        **json.loads(asked.stdout),
        **git_sha(),
        "home": home if home and os.access(home, os.W_OK) else f"{home or 'unset'}: not writable; parts get their own",
        "installed": installed("workbench.bundled_presets"),  # False: a bare tree, as on the GPU machine
        "optional_packages": {name: installed(name) for name in ("liger_kernel", "cut_cross_entropy", "pytest")},
    }


def compile_ratio(report: dict) -> float | None:
    """compile_s at micro-batch 16 over auto (same model, same tokens_per_step, both cold):
    ~1 when the compiled graph does not grow with the micro-steps."""
    auto = report.get("throughput_auto_fused_flash", {}).get("compile_s")
    fixed = report.get("throughput_16_fused_flash", {}).get("compile_s")
    return round(max(auto, fixed) / min(auto, fixed), 2) if auto and fixed else None


# --------------------------------------------------------------- the parts


def part_main(args) -> int:
    """One part, in this process: its result file is rewritten after every check it makes."""
    import torch

    result: dict = {"torch": torch.__version__}

    def save(figures: dict) -> None:
        result.update(figures)
        write_json(args.result, result)

    box_ended = stop_at(args.deadline)
    code = 0
    try:
        run_part(args.part, args.rehearse, args.work, save, args.deadline)
    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # KeyboardInterrupt: stopped while compiling
        traceback.print_exc()
        result["error"] = str(exc) if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"[:500]
        code = 1
    if box_ended.is_set():
        result["stopped_at_box"] = True
    write_json(args.result, result)
    return code


def stop_at(deadline: float | None) -> threading.Event:
    """At the deadline the part stops itself as the driver would: SIGTERM, which a trainer turns
    into a stop at its next boundary (with its last.pt and run_finished). Set once that happened."""
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        os.kill(os.getpid(), signal.SIGTERM)

    if deadline is not None:
        timer = threading.Timer(max(0.0, deadline - time.time()), fire)
        timer.daemon = True
        timer.start()
    return fired


def run_part(name: str, rehearse: bool, work: Path, save, deadline: float | None) -> None:
    s = sizes(rehearse)
    run_dir = work / name
    # a subprocess's timeout: ends before the part's own deadline, so the part can still report
    left = (lambda: max(1.0, deadline - time.time() - 3)) if deadline else (lambda: 600.0)
    if name in THROUGHPUT:
        save(throughput(run_dir, *THROUGHPUT[name], s, work / "shards", rehearse))
    elif name == "loss_kernels":
        loss_kernels(s["loss_rows"], s["loss_vocab"], rehearse, save)
    elif name == "decode":
        save(decode(run_dir, s, work / "shards", left))
    elif name == "pytest":
        save(unit_tests(work, left))
    elif name == "addition":
        save(to_target(run_dir, "addition", s["addition"]))
    elif name == "shakespeare":
        if not (work / "cache" / "gptbench" / "tinyshakespeare" / "input.txt").is_file():
            raise SystemExit("no tiny Shakespeare in the leg's cache: pass --text PATH (see README, 'The GPU leg')")
        save(to_target(run_dir, "shakespeare-char", s["shakespeare"]))
    elif name == "checks":
        checks(run_dir, s["checks"], rehearse, work / "shards", save)
    else:
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
    if result["steps_done"] < s["steps"]:
        result["error"] = f"stopped after {result['steps_done']} of {s['steps']} steps"
    result.update(attention=attention, attention_backend_used=backend, profile=profile)
    return result


def to_target(run_dir: Path, preset: str, overrides: list[str]) -> dict:
    """Wall time to the preset's target; cut by the box, the best it reached and when."""
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
        best = min(evals, key=lambda e: e["val_loss"])
        out.update(val_loss=evals[-1]["val_loss"], metrics=evals[-1]["metrics"], eval_step=evals[-1]["step"])
        out.update(
            best_val_loss=best["val_loss"], best_val_step=best["step"], best_val_at_s=round(best["t"] - started, 1)
        )
    out["elapsed_s"] = round((events[-1]["t"] if events else started) - started, 1)
    return out


def decode(run_dir: Path, s: dict, shards: Path, left) -> dict:
    """Decode tokens/sec of one prompt, as users run it, on a gpt2-124m made here (one training step
    of its own, not an earlier part's checkpoint): eager (one answer) and served (the app's console:
    the decoding step compiled as a CUDA graph on CUDA)."""
    step = [*s["gpt2"], *s["decode_step"], f"data.path={shards}", "train.batch_size=1", "train.compile=false"]
    step += ["train.max_steps=1", "train.eval_every=1000000", "train.eval_steps=1", "train.eval_tasks="]
    train(run_dir, "gpt2-124m", step)
    base = [sys.executable, "-m", "workbench.engine.sampler", "--run-dir", str(run_dir), "--checkpoint", "last"]
    base += ["--device", s["device"]]
    request = {"prompt": "Hello, I'm a language model,", "max_new_tokens": s["decode_tokens"], "temperature": 1.0}
    request.update(top_k=0, seed=0, num_samples=2)  # two samples: the second has warm kernels and allocator
    once = base + ["--prompt", request["prompt"], "--max-new-tokens", str(s["decode_tokens"])]
    once += ["--temperature", "1.0", "--top-k", "0", "--seed", "0", "--num-samples", "2"]
    eager = sampler_done(once, None, left())
    served = sampler_done(base + ["--serve"], json.dumps({"cmd": "sample", **request}) + "\n", left())
    return {
        "new_tokens": eager[-1].get("tokens"),
        "decode_tokens_per_sec": round(eager[-1]["tokens_per_sec"], 1),
        "first_sample_tokens_per_sec": round(eager[0]["tokens_per_sec"], 1),
        "served_tokens_per_sec": round(served[-1]["tokens_per_sec"], 1),
        "served_first_sample_tokens_per_sec": round(served[0]["tokens_per_sec"], 1),
        "served_cuda_graph": s["device"] == "cuda",  # the sampler compiles its step only on CUDA
    }


def sampler_done(argv: list[str], stdin: str | None, timeout: float) -> list[dict]:
    """The `done` events of a sampler subprocess (in this part's process group)."""
    out = subprocess.run(argv, input=stdin or "", capture_output=True, text=True, cwd=REPO, timeout=timeout)
    print(out.stderr[-4000:], file=sys.stderr)
    done = [json.loads(line) for line in out.stdout.splitlines() if '"done":true' in line.replace(" ", "")]
    if out.returncode or len(done) < 2:
        raise SystemExit(f"the sampler failed (exit {out.returncode}): {out.stdout[-500:]}")
    return done


def unit_tests(work: Path, left) -> dict:
    """The CUDA tests (the loss's, the engine's) in one pytest process: no workers to outlive it.
    The tests train on tiny Shakespeare: the leg's copy. On a CPU they skip."""
    if not installed("pytest"):
        return {"skipped": "pytest is not installed"}
    tests = ["tests/unit/test_loss.py", "tests/integration/test_engine_gpu_ready.py"]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts="]
    argv += ["-k", "cuda", *tests]
    text = work / "cache" / "gptbench" / "tinyshakespeare" / "input.txt"
    env = {**os.environ, "GPTBENCH_TEST_SHAKESPEARE": str(text)}
    try:
        out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=left())
    except subprocess.TimeoutExpired as exc:
        print((exc.stdout or "")[-3000:], file=sys.stderr)
        return {"error": f"pytest ran past the part's box ({exc.timeout:.0f} s)"}
    print(out.stdout[-3000:], file=sys.stderr)
    summary = (out.stdout.strip().splitlines() or [""])[-1]
    return {"summary": summary} if out.returncode == 0 else {"error": f"pytest exit {out.returncode}: {summary}"}


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


def loss_kernels(rows: int, vocab: int, rehearse: bool, save) -> None:
    """LM head + loss, forward and backward, at gpt2's width: ms and peak memory of each implementation,
    and the loss train.loss=auto takes on CUDA beside the fastest measured here."""
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
        else:
            try:
                results[name] = time_loss(fn, x, w, dtype, device)
                reference = reference if reference is not None else results[name]["loss"]
                results[name]["loss_minus_fused"] = round(results[name]["loss"] - reference, 5)
            except Exception as exc:  # an optional package's API may have moved: say so, go on
                results[name] = {"note": f"failed: {type(exc).__name__}: {exc}"[:300]}
                if name in ("fused", "plain"):  # ours must run
                    results[name]["error"] = results[name].pop("note")
        save(results)
    results["auto_on_cuda"] = auto_on_cuda(ours, results)
    print(f"train.loss=auto on CUDA: {results['auto_on_cuda']}", flush=True)
    save(results)
    if any("error" in v for v in results.values() if isinstance(v, dict)):
        raise SystemExit("our fused or plain loss failed: see loss_kernels in the results")


def auto_on_cuda(ours, results: dict) -> dict:
    """What train.loss=auto runs on CUDA, by the rule in workbench/engine/loss.py (read, not restated),
    and whether the fastest of ours measured here agrees."""
    import inspect

    chosen = ours.resolve_loss("auto", "cuda")
    rule = inspect.getsource(ours.resolve_loss).strip().splitlines()
    timed = {name: results[name]["ms"] for name in results if isinstance(results[name], dict) and "ms" in results[name]}
    ours_timed = {name: ms for name, ms in timed.items() if name.split("_")[0] in ("fused", "plain")}
    fastest = min(ours_timed, key=ours_timed.get) if ours_timed else None
    return {
        "loss": chosen,
        "why": f"workbench/engine/loss.py: {' '.join(line.strip() for line in rule[1:])}"[:600],
        "cuda_auto_loss": getattr(ours, "CUDA_AUTO_LOSS", None),
        "fastest_of_ours_here": fastest,
        "agrees": fastest is not None and fastest.split("_")[0] == chosen,
    }


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


def checks(run_dir: Path, device_overrides: list[str], rehearse: bool, shards: Path, save) -> None:
    """The device checks: a compiled bf16 run with fused AdamW, its resume, the loss on the device.
    (The micro-batch probe shows in throughput_auto_*: micro_batch_how.) On the random-id shards:
    they need no download and no cache. Each is saved as soon as it is known."""
    import torch

    from workbench.engine import loss as ours

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
    out: dict = {"all_ok": False}
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
    save(out)
    for name, check in (
        ("fused_adamw", lambda: fused_adamw(run_dir)),
        ("resume", lambda: resume(run_dir, 20)),
        ("loss_on_device", lambda: loss_on_device(ours, torch, rehearse)),
    ):
        try:
            out[name] = check()
        except Exception as exc:  # one check's failure is that check's: the others still run
            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        save(out)
    out["all_ok"] = all(v.get("ok", True) for v in out.values() if isinstance(v, dict))
    save(out)


def fused_adamw(run_dir: Path) -> dict:
    """The optimizer the run stepped with: torch's fused AdamW (one kernel for all parameters), as its
    checkpoint records it."""
    from workbench.engine import checkpoint

    state = checkpoint.load(run_dir / "last.pt")["optimizer"]
    groups = state.get("adamw", state)["param_groups"]  # Muon + AdamW keep each part under its name
    fused = [bool(group.get("fused")) for group in groups]
    return {"ok": all(fused), "fused": fused}


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
    keys = ("ok", "error", "skipped", "tokens_per_sec", "time_to_target_s", "best_val_loss")
    keys += ("decode_tokens_per_sec", "served_tokens_per_sec", "summary", "all_ok", "part_s")
    line = ", ".join(f"{k}={result[k]}" for k in keys if k in result)
    auto = result.get("auto_on_cuda")
    if auto:  # loss_kernels: the choice train.loss=auto makes on CUDA, beside what was fastest here
        line += f", train.loss=auto on CUDA: {auto['loss']} (fastest of ours here: {auto['fastest_of_ours_here']})"
    return line


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def git_sha() -> dict:
    """The commit, when this is a git checkout and git is here (a copy sent to a GPU machine is neither)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"git_sha": None, "git": f"no git here ({type(exc).__name__})"}
    if out.returncode:
        return {"git_sha": None, "git": "not a git checkout"}
    return {"git_sha": out.stdout.strip()}


if __name__ == "__main__":
    sys.exit(main())
