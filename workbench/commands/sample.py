"""`gptbench sample SOURCE --prompt TEXT`: stream a continuation from a checkpoint.

SOURCE is a run directory, or anything `model.init_from` takes: gpt2,
gpt2-medium, gpt2-large, gpt2-xl or a Hugging Face GPT-2 folder (as nanoGPT's
sample.py with init_from=gpt2). The model runs in the sampler subprocess
(`python -m workbench.engine.sampler`), the same one the app's console uses for
finished runs; we print its events.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from .. import weights_source
from ..config import ConfigError
from ..launcher import run_job, sampler_command
from .error_line import print_error


def sample(
    source: str,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float | None,
    num_samples: int,
    checkpoint: str,
    seed: int | None,
) -> int:
    weights_source.resolve(
        source
    )  # a missing folder, an unknown name, a run without checkpoints: answered now, without torch
    run_dir = Path(source)
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"--checkpoint must be best or last, got {checkpoint!r}.", "use --checkpoint best")
    args = [
        "--checkpoint",
        checkpoint,
        "--prompt",
        prompt,
        "--max-new-tokens",
        str(max_new_tokens),
        "--temperature",
        str(temperature),
        "--top-k",
        str(top_k),
        "--num-samples",
        str(num_samples),
    ]
    if top_p is not None:
        args += ["--top-p", str(top_p)]
    if seed is not None:
        args += ["--seed", str(seed)]
    console = Console(highlight=False, stderr=True)
    started: set[int] = set()

    def on_event(e: dict) -> None:
        if e["event"] == "error":
            print_error(console, e["message"], e["hint"])
        elif e["event"] == "sample":
            if "correct" in e:  # addition: the answer and the verdict
                verdict = "right" if e["correct"] else f"wrong, expected {e['expected']}"
                sys.stdout.write(f"{e['prompt']} = {e['answer']}  ({verdict})\n")
            else:
                if e.get("index", 0) not in started:  # each sample starts with its prompt, like nanoGPT
                    started.add(e.get("index", 0))
                    sys.stdout.write(prompt)
                sys.stdout.write(e["text"])
                if e["done"]:
                    sys.stdout.write("\n" if num_samples == 1 else "\n---------------\n")
            sys.stdout.flush()

    job = run_job(
        sampler_command(run_dir, args), on_event, run_dir, on_stderr=lambda line: print(line, file=sys.stderr)
    )
    return 2 if job.error and job.code in (0, 2) else job.code
