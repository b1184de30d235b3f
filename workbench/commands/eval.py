"""`gptbench eval SOURCE --task hellaswag|ppl|addition`: score a model.

SOURCE is a run directory (its best.pt or last.pt) or pretrained weights, as
`gptbench sample` takes them: gpt2 ... gpt2-xl or a Hugging Face GPT-2 folder.

The model runs in the evaluation subprocess (`python -m workbench.engine.evaluate`);
this module checks the arguments, shows a progress bar on a terminal and prints
the result: one line, or with --json the final `eval` event.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .. import weights_source
from ..config import ConfigError
from ..launcher import run_job
from ..tasks import TASKS
from .error_line import print_error


def evaluate(source: str, task: str, data: Path | None, limit: int, as_json: bool, checkpoint: str, device: str) -> int:
    weights_source.resolve(
        source
    )  # a missing folder, an unknown name, a run without checkpoints: answered now, without torch
    run_dir = Path(source)
    if task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)}, got {task!r}.", "e.g. --task hellaswag")
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"--checkpoint must be best or last, got {checkpoint!r}.", "use --checkpoint best")
    if limit < 0:
        raise ConfigError(f"--limit must be 0 (all) or more, got {limit}.", "e.g. --limit 1000")
    if data is not None and not data.is_file():
        raise ConfigError(
            f"--data {data} is not a file.", "hellaswag: a copy of hellaswag_val.jsonl; ppl: a UTF-8 text file."
        )
    args = [
        "--run-dir",
        str(run_dir),
        "--task",
        task,
        "--limit",
        str(limit),
        "--checkpoint",
        checkpoint,
        "--device",
        device,
    ]
    if data is not None:
        args += ["--data", str(data)]

    console = Console(highlight=False, stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    bar = progress.add_task(task, total=None)
    seen: dict = {}

    def on_event(e: dict) -> None:
        if e["event"] == "progress":
            progress.update(bar, completed=e["done"], total=e["total"])
        elif e["event"] == "eval":
            seen["eval"] = e

    with progress:
        job = run_job([sys.executable, "-m", "workbench.engine.evaluate", *args], on_event, run_dir)
    if job.error:
        print_error(console, job.error["message"], job.error["hint"])
        if job.error["kind"] == "internal":  # a bug: the traceback
            console.print(escape("\n".join(job.stderr_tail[-15:])), soft_wrap=True)
        return job.code or 2
    if "eval" not in seen:
        console.print(f"[red bold]error:[/] the evaluation exited with code {job.code} before a result.")
        console.print(escape("\n".join(job.stderr_tail[-15:])), soft_wrap=True)
        return job.code or 1
    result = seen["eval"]
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        metrics = " | ".join(f"{k} [bold]{v:.4f}[/]" for k, v in result["metrics"].items())
        checkpoint_file = Path(result["checkpoint"])
        model = (
            f"{source} {checkpoint_file.name} (step {result['step']})" if checkpoint_file.suffix == ".pt" else source
        )
        Console(highlight=False).print(
            f"{task} | {escape(model)} | "
            f"{result['examples']:,} examples | {metrics} | {result['seconds']:.1f}s on {escape(result['device'])}",
            soft_wrap=True,
        )
    return 0
