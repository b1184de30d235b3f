"""`gptbench eval`'s worker: score a run's checkpoint (or pretrained weights) on one task; events on stdout.

    python -m workbench.engine.evaluate --run-dir D|gpt2|HF_FOLDER --task hellaswag|ppl|addition
        [--data PATH] [--limit N] [--checkpoint best|last] [--device auto]

Emits `progress` events (examples done of all) while it works, then one `eval`
event: the checkpoint's step, val_loss null, the task's metrics, and the task,
examples, checkpoint and seconds. A failure is an `error` event (process_frame.py):
bad input exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..config import ConfigError
from ..process_frame import EventWriter, run_process
from ..tasks import TASKS

PROGRESS_EVERY_S = 0.5


def evaluate(
    run_dir: Path, task_name: str, data: Path | None, limit: int, which: str, device: str, events: EventWriter
) -> None:
    from .sampler import load_run
    from .tasks import build_task

    run = load_run(run_dir, which, device)
    if task_name == "addition":
        if run.cfg.data.kind != "addition" or data:
            raise ConfigError(
                "--task addition scores a run trained on addition, on its own problems (no --data).",
                "for a language model use --task hellaswag or --task ppl.",
            )
        task = run.task()
    else:
        if run.cfg.data.kind == "addition":
            raise ConfigError(
                f"{run_dir} learned addition: its digits tokenizer cannot read {task_name}'s text.",
                "score it with --task addition.",
            )
        task = build_task(task_name, run.tokenizer, data)

    start, last = time.time(), 0.0
    counted = {"examples": 0}

    def progress(done: int, total: int) -> None:
        nonlocal last
        counted["examples"] = total
        if time.time() - last > PROGRESS_EVERY_S or done == total:
            last = time.time()
            events.emit("progress", stage=task_name, done=done, total=total)

    with run.setup.autocast():
        metrics = task.evaluate(run.model, limit, progress=progress)
    events.emit(
        "eval",
        step=run.step,
        val_loss=None,
        metrics=metrics,
        task=task_name,
        examples=counted["examples"],
        checkpoint=str(run.path),
        seconds=time.time() - start,
        device=run.setup.name,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m workbench.engine.evaluate", description="Score a checkpoint on a task; events on stdout."
    )
    p.add_argument(
        "--run-dir",
        required=True,
        type=Path,
        help="a run directory, or a pretrained source (gpt2, a Hugging Face folder)",
    )
    p.add_argument("--task", required=True, choices=list(TASKS))
    p.add_argument("--data", type=Path, default=None, help="hellaswag: a local hellaswag_val.jsonl; ppl: a text file")
    p.add_argument("--limit", type=int, default=0, help="score the first N examples only (0: all)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    return run_process(
        lambda events: evaluate(args.run_dir, args.task, args.data, args.limit, args.checkpoint, args.device, events),
        bad_input="config",
    )


if __name__ == "__main__":
    sys.exit(main())
