"""`gptbench bench [PRESET ...]`: speed, measured through the real run path.

For each preset, three measurements, each a real subprocess with events on:

1. throughput: train a fixed number of steps; drop the warm-up intervals
   (compilation, allocator warm-up); report the median tokens/sec of the log
   intervals after it, the step time, MFU and peak GPU memory. The trainer
   times an interval between two host reads of the loss, which wait for the
   device, so these are synchronised clocks.
2. time to target: the preset (its bench profile if it has one) run until its
   target (addition: 100% on held-out and all problems; shakespeare-char: val
   loss); wall time from starting the command to the eval event that hit it.
3. decode: the checkpoint sampler generating 256 new tokens for one prompt with
   the KV cache; tokens/sec of the generation itself (model loading excluded).

`--tiny` shrinks every model and budget so the whole thing runs on a CPU in
seconds (the test suite uses it). Results go to
`bench/results/<date>-<device>.json`, the raw events to a `.log` beside it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from rich.console import Console

from .. import __version__, presets, units
from ..config import ConfigError
from ..launcher import run_job, sampler_command, trainer_command
from ..runs import slug


@dataclass
class BenchPlan:
    """What to measure for one preset."""

    throughput_steps: int  # steps timed (after warm-up)
    warmup_steps: int  # steps whose intervals are dropped
    target: list[str]  # overrides that make the run stop at its target
    target_profile: str | None = None  # a preset profile holding a speed-run recipe
    prompt: str = "\n"
    tiny: list[str] = field(default_factory=list)  # --tiny: overrides that make it CPU-sized


TINY_MODEL = [
    "model.n_layer=2",
    "model.n_head=2",
    "model.n_embd=64",
    "train.batch_size=4",
    "train.eval_steps=2",
    "train.warmup_steps=2",
]

PLANS = {
    "addition": BenchPlan(
        throughput_steps=200,
        warmup_steps=20,
        target=["train.target_accuracy=1.0", "train.eval_every=50"],
        target_profile="speedrun",
        prompt="23+58",
        tiny=["train.max_steps=40", "train.eval_every=20"],
    ),
    "shakespeare-char": BenchPlan(
        throughput_steps=100,
        warmup_steps=20,
        target=["train.target_val_loss=1.47"],
        target_profile="speedrun",
        prompt="ROMEO:",
        tiny=[
            *TINY_MODEL,
            "model.block_size=32",
            "train.target_val_loss=3.3",
            "train.max_steps=60",
            "train.eval_every=20",
        ],
    ),
    "gpt2-124m": BenchPlan(
        throughput_steps=20,
        warmup_steps=5,
        target=[],
        prompt="Hello, I'm a language model,",
        tiny=[
            "profile=shakespeare",
            *TINY_MODEL,
            "model.block_size=64",
            "train.tokens_per_step=512",
            "train.max_steps=4",
        ],
    ),
}
TINY_LOG = ["train.log_every=2"]


def logged_job(argv: list[str], run_dir: Path, log: list[str]) -> tuple[list[dict], float]:
    """Run one engine process to the end, every line into the raw log; returns its events and start time (unix)."""
    events: list[dict] = []

    def on_event(e: dict) -> None:
        events.append(e)
        log.append(json.dumps(e))

    start = time.time()
    job = run_job(argv, on_event, run_dir, on_stderr=lambda line: log.append(f"# stderr: {line}"))
    if job.code != 0:
        reason = job.error["message"] if job.error else "\n".join(job.stderr_tail[-10:])
        raise ConfigError(
            f"A benchmark job failed (exit {job.code}): {reason}",
            "the raw log has the details; try `gptbench run` with the same --set.",
        )
    return events, start


def measure_throughput(name: str, plan: BenchPlan, extra: list[str], tiny: bool, work: Path, log: list[str]) -> dict:
    steps = plan.warmup_steps + plan.throughput_steps
    log_every = 2 if tiny else 10
    overrides = [
        *(plan.tiny if tiny else []),
        *extra,
        f"train.max_steps={4 * log_every if tiny else steps}",
        f"train.log_every={log_every}",
        "train.eval_every=1000000",
        "train.eval_steps=1",
        "train.ckpt_every=0",
    ]
    events, _ = logged_job(
        trainer_command(name, work / f"{name}-throughput", overrides), work / f"{name}-throughput", log
    )
    started = next(e for e in events if e["event"] == "run_started")
    # the session's first step is not timed: a step event of it alone has no tokens_per_sec
    step_events = [e for e in events if e["event"] == "step" and e["tokens_per_sec"] is not None]
    warm = plan.warmup_steps if not tiny else log_every
    steady = [e for e in step_events if e["step"] > warm] or step_events[-1:]
    tok_s = statistics.median(e["tokens_per_sec"] for e in steady)
    mfus = [e["mfu"] for e in steady if e.get("mfu") is not None]
    mems = [e["gpu_mem_gb"] for e in steady if "gpu_mem_gb" in e]
    return {
        "config": started["config"],
        "device_name": started["device_name"],
        "dtype": started["dtype"],
        "compile": started["compile"],
        "params": started["params"],
        "tokens_per_step": started["tokens_per_step"],
        "steps_timed": steady[-1]["step"] - (steady[0]["step"] - log_every),
        "tokens_per_sec": tok_s,
        "step_ms": 1000.0 * started["tokens_per_step"] / tok_s,
        "mfu": statistics.median(mfus) if mfus else None,
        "peak_mem_gb": max(mems) if mems else None,
    }


def measure_time_to_target(
    name: str, plan: BenchPlan, extra: list[str], tiny: bool, work: Path, log: list[str]
) -> dict | None:
    if not plan.target and not tiny:
        return None
    profile = []
    if plan.target_profile and not tiny and plan.target_profile in presets.load(name).profiles:
        profile = [f"profile={plan.target_profile}"]
    overrides = [*profile, *plan.target, *(plan.tiny + TINY_LOG if tiny else []), *extra]
    run_dir = work / f"{name}-target"
    events, start = logged_job(trainer_command(name, run_dir, overrides), run_dir, log)
    finished = next(e for e in events if e["event"] == "run_finished")
    hit = next((e for e in events if e["event"] == "log" and e["message"].startswith("target reached")), None)
    evals = [e for e in events if e["event"] == "eval"]
    last_eval = evals[-1] if evals else {}
    return {
        "overrides": overrides,
        "reached": hit is not None,
        "time_to_target_s": (hit["t"] - start) if hit else None,
        "step": finished["step"],
        "val_loss": last_eval.get("val_loss"),
        "metrics": last_eval.get("metrics", {}),
        "run_dir": str(run_dir),
    }


def measure_decode(run_dir: Path, prompt: str, new_tokens: int, log: list[str]) -> dict:
    argv = sampler_command(
        run_dir,
        [
            "--checkpoint",
            "last",
            "--prompt",
            prompt,
            "--max-new-tokens",
            str(new_tokens),
            "--temperature",
            "1.0",
            "--top-k",
            "0",
            "--seed",
            "0",
        ],
    )
    events, _ = logged_job(argv, run_dir, log)
    done = next(e for e in events if e["event"] == "sample" and e["done"])
    return {"new_tokens": done["tokens"], "decode_tokens_per_sec": done["tokens_per_sec"]}


def bench(names: list[str], overrides: list[str], tiny: bool, out_dir: Path, work_dir: Path | None) -> None:
    names = names or list(PLANS)
    for name in names:
        if name not in PLANS:
            raise ConfigError(f"No benchmark for preset {name!r}.", f"choose from: {', '.join(PLANS)}.")
        presets.resolve(presets.load(name), overrides, "cpu")  # typos fail now, not after minutes
    console = Console(highlight=False)
    work = work_dir or out_dir / "runs"
    work.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    results: dict[str, dict] = {}
    device_name = "unknown"
    for name in names:
        plan = PLANS[name]
        console.print(f"[bold]{name}[/]: throughput…")
        r = measure_throughput(name, plan, overrides, tiny, work, log)
        device_name = r["device_name"]
        console.print(
            f"  {units.count(r['tokens_per_sec'])} tok/s, {r['step_ms']:.1f} ms/step"
            + (f", MFU {100 * r['mfu']:.1f}%" if r["mfu"] is not None else "")
        )
        target = measure_time_to_target(name, plan, overrides, tiny, work, log)
        if target:
            console.print(
                f"  target {'reached' if target['reached'] else 'NOT reached'} in "
                f"{units.duration(target['time_to_target_s'])} (step {target['step']})"
            )
        r["time_to_target"] = target
        r.update(measure_decode(work / f"{name}-throughput", plan.prompt, 256 if name != "addition" else 3, log))
        console.print(f"  decode {r['decode_tokens_per_sec']:.0f} tok/s")
        results[name] = r
    stamp = date.today().isoformat()
    base = out_dir / f"{stamp}-{slug(device_name)}{'-tiny' if tiny else ''}"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "date": stamp,
        "device_name": device_name,
        "tiny": tiny,
        "gptbench": __version__,
        "overrides": overrides,
        "versions": _versions(),
        "results": results,
    }
    base.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    base.with_suffix(".log").write_text("\n".join(log) + "\n")
    console.print(f"wrote {base.with_suffix('.json')} and {base.with_suffix('.log')}")


def _versions() -> dict:
    """torch and CUDA versions, asked of a subprocess: this process never imports torch."""
    code = (
        "import json, platform, torch; print(json.dumps({'python': platform.python_version(), "
        "'torch': torch.__version__, 'cuda': torch.version.cuda}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout) if out.returncode == 0 else {}
