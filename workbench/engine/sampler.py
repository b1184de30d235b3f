"""Sampling: turn a prompt into streamed `sample` events.

Used two ways:
- by the trainer, between steps, on the live model (the `sample` command);
- as a subprocess on a checkpoint: `python -m workbench.engine.sampler
  --run-dir D --prompt "..."` answers once, `--serve` answers one JSON command
  per stdin line with the model loaded once (the app's console for finished runs).

Either way the output is the same events: `sample` pieces with `done: false`
as tokens arrive, then one with `done: true` (the full text, token count,
decode speed; for addition also the answer and whether it is right), or an
`error` of kind `prompt` that says what was wrong with the prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import torch

from ..config import Config, ConfigError
from ..runs import BEST_CKPT, CONFIG_FILE, LAST_CKPT, read_json, require_run_dir
from . import checkpoint
from .device import DeviceSetup, setup_device
from .model import GPT
from .tasks import Task
from .tasks.perplexity import Perplexity
from .tokenizers import Tokenizer, load_tokenizer

Emit = Callable[..., dict]


@dataclass
class SampleRequest:
    id: str = "0"
    prompt: str = ""
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 200
    top_p: float | None = None
    num_samples: int = 1
    seed: int | None = None

    @classmethod
    def from_command(cls, cmd: dict) -> "SampleRequest":
        known = {f.name for f in fields(cls)}
        req = cls(**{k: v for k, v in cmd.items() if k in known and v is not None})
        req.id = str(req.id)
        if "top_k" in cmd and (cmd["top_k"] is None or cmd["top_k"] <= 0):
            req.top_k = None  # 0 or null: no top-k cut
        return req


def stream_sample(model: GPT, tokenizer, task: Task, req: SampleRequest, setup: DeviceSetup, emit: Emit) -> None:
    """Generate for one request, emitting events as text arrives. Never raises for bad prompts.

    The task says how the prompt becomes token ids and how the answer is judged;
    a task with a fixed answer_length (addition) is decoded greedily to exactly
    that many tokens and its final event carries the verdict.
    """
    judged = task.answer_length is not None
    try:
        ids = task.format_prompt(req.prompt)
        if (req.max_new_tokens < 1 or req.temperature < 0 or req.num_samples < 1
                or (req.top_p is not None and not 0 < req.top_p <= 1)):
            raise ConfigError(
                "max_new_tokens and num_samples must be >= 1, temperature >= 0 and top_p in (0, 1].",
                "e.g. max_new_tokens=200 temperature=0.8 top_k=200 (0 = off) top_p=0.95",
            )
    except ConfigError as exc:
        emit("error", kind="prompt", id=req.id, message=exc.message, hint=exc.hint)
        return

    generator = torch.Generator(device=setup.device)
    generator.manual_seed(req.seed if req.seed is not None else int.from_bytes(os.urandom(4), "little"))
    max_new = task.answer_length if judged else req.max_new_tokens
    temperature = 0.0 if judged else req.temperature  # one right answer: the likeliest
    for index in range(req.num_samples):
        idx = torch.tensor([ids], dtype=torch.long, device=setup.device)
        out: list[int] = []
        sent = ""
        start = time.perf_counter()
        with torch.no_grad(), setup.autocast():
            for token in model.generate(idx, max_new, temperature=temperature, top_k=req.top_k, top_p=req.top_p, generator=generator):
                out.append(int(token[0]))  # one sync per token: we are streaming to a person
                if judged:
                    continue
                text = tokenizer.decode(out)
                if text.endswith("\ufffd"):
                    continue  # half of a multi-byte character: wait for the rest
                if len(text) > len(sent):
                    emit("sample", id=req.id, index=index, text=text[len(sent):], done=False)
                    sent = text
        seconds = time.perf_counter() - start
        final = {"tokens": len(out), "tokens_per_sec": len(out) / max(seconds, 1e-9), "prompt": req.prompt}
        if judged:
            verdict = task.judge(req.prompt, out)
            final.update(verdict, full_text=str(verdict["answer"]))
            emit("sample", id=req.id, index=index, text=str(verdict["answer"]), done=True, **final)
        else:
            text = tokenizer.decode(out)
            emit("sample", id=req.id, index=index, text=text[len(sent):], done=True, full_text=text, **final)


# ------------------------------------------------------------------ subprocess


@dataclass
class LoadedRun:
    """A run's trained model, ready to answer: what `gptbench sample` and `gptbench eval` start from."""

    model: GPT
    cfg: Config
    tokenizer: Tokenizer
    setup: DeviceSetup
    step: int
    path: Path  # the checkpoint

    def task(self) -> Task:
        """The run's own task: addition for the adder, free text (perplexity) for a language model."""
        if self.cfg.data.kind == "addition":
            from .data import build_dataset

            return build_dataset(self.cfg, self.setup.device).task
        return Perplexity(self.tokenizer)


def load_run(run_dir: Path, which: str, device: str = "auto") -> LoadedRun:
    """The model in a run directory's best.pt or last.pt, in eval mode, on `device`."""
    run_dir = require_run_dir(run_dir)
    cfg = Config.from_dict(read_json(run_dir / CONFIG_FILE))
    cfg.train.device, cfg.train.compile = device, False
    setup = setup_device(cfg.train)
    path = run_dir / (BEST_CKPT if which == "best" else LAST_CKPT)
    ckpt = checkpoint.load(path, map_location=setup.device)
    cfg = Config.from_dict(ckpt["config"])
    model = GPT(cfg.model).to(setup.device)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return LoadedRun(model, cfg, load_tokenizer(run_dir), setup, ckpt["step"], path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workbench.engine.sampler", description="Sample from a run's checkpoint; events on stdout.")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--device", default="auto")
    p.add_argument("--serve", action="store_true", help="answer JSON sample commands from stdin, one per line")
    p.add_argument("--prompt", default="")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=200)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)

    from ..events import encode, make

    out = sys.stdout

    def emit(event: str, **f) -> dict:
        evt = make(event, **f)
        out.write(encode(evt) + "\n")
        out.flush()
        return evt

    try:
        run = load_run(Path(args.run_dir), args.checkpoint, args.device)
        model, tokenizer, task, setup = run.model, run.tokenizer, run.task(), run.setup
    except ConfigError as exc:
        emit("error", kind="checkpoint", message=exc.message, hint=exc.hint)
        return 2
    if not args.serve:
        req = SampleRequest(
            prompt=args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
            top_k=args.top_k if args.top_k > 0 else None, top_p=args.top_p,
            num_samples=args.num_samples, seed=args.seed,
        )
        stream_sample(model, tokenizer, task, req, setup, emit)
        return 0
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
        except ValueError:
            continue
        if isinstance(cmd, dict) and cmd.get("cmd") == "sample":
            stream_sample(model, tokenizer, task, SampleRequest.from_command(cmd), setup, emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
