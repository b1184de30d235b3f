"""Tasks: what a model is evaluated on, and how a person puts a question to it.

A task answers three questions (the `Task` protocol):

- what to evaluate: `evaluate(model, limit)` runs the model over the task's
  examples (the first `limit`, 0 = all) and returns its metrics;
- how to format a prompt: `format_prompt(text)` turns what a person types into
  the token ids the model reads (or raises PromptError with a hint);
- how to judge an answer: `judge(prompt, answer_ids)` says what the model
  answered and whether that is right. Tasks with a fixed-length answer set
  `answer_length`: the sampler then decodes exactly that many tokens greedily.
  Free text (answer_length None) has no right answer: judge returns {}.

The tasks: `addition` (minGPT's adder, a training dataset too), `hellaswag`
(build-nanogpt's completion-style scoring) and `ppl` (perplexity on a text
file). The sampling console uses a run's own task; `train.eval_tasks` adds
hellaswag and ppl metrics to every eval; `gptbench eval` runs one on a checkpoint.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import torch

from ...config import ConfigError
from ...data.tokenizers import Tokenizer
from ...tasks import TASKS, TEXT_TASKS

Progress = Callable[[int, int], None]  # (examples done, examples in all)


class Task(Protocol):
    name: str
    answer_length: int | None

    def evaluate(
        self,
        model: torch.nn.Module,
        limit: int = 0,
        rank: int = 0,
        world_size: int = 1,
        progress: Progress | None = None,
    ) -> dict[str, float]:
        """Metrics over the first `limit` examples (0: all). Under DDP every rank calls it:
        hellaswag and ppl score their share (example i on rank i % world_size) and sum
        the counts across ranks; addition, cheap, scores everything on every rank."""

    def format_prompt(self, text: str) -> list[int]: ...

    def judge(self, prompt: str, answer_ids: list[int]) -> dict: ...


class FreeText:
    """Prompts for a language model: text in, text out, nothing to judge."""

    answer_length = None

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    def format_prompt(self, text: str) -> list[int]:
        return self.tokenizer.encode(text) if text else [self.tokenizer.start_id]

    def load(self) -> None:
        """Read (and fetch) the task's data now, so a mistake shows before training; a task that reads
        it in __init__ has nothing left to do."""

    def judge(self, prompt: str, answer_ids: list[int]) -> dict:
        return {}


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd for the block; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def tokens_per_forward(model: torch.nn.Module) -> int:
    """How many tokens a scoring forward pass takes at once: its float32 logits
    (tokens x vocab) dominate the memory and the time, 0.2 GB at 1024 GPT-2 tokens."""
    return 16384 if next(model.parameters()).device.type == "cuda" else 1024


def sum_across_ranks(tally: torch.Tensor, world_size: int) -> torch.Tensor:
    """Add up the per-rank counts of a sharded evaluation (identity for one process)."""
    if world_size > 1:
        torch.distributed.all_reduce(tally)
    return tally


def build_task(name: str, tokenizer: Tokenizer, data: Path | None = None) -> Task:
    """A text task by name (see workbench/tasks.py), its data read (and fetched) now, so mistakes show at once."""
    info = TASKS.get(name)
    if info is None or not info.text:
        raise ConfigError(f"Unknown text task {name!r}.", f"the text tasks are {', '.join(TEXT_TASKS)}.")
    task_class = getattr(importlib.import_module(f".{info.module}", __name__), info.cls)
    task = task_class(tokenizer, data)
    task.load()
    return task


def evaluate_all(tasks: list[Task], model: torch.nn.Module, limit: int, rank: int, world_size: int) -> dict[str, float]:
    """Every task's metrics in one dict (their names carry the task's name)."""
    metrics: dict[str, float] = {}
    for task in tasks:
        metrics.update(task.evaluate(model, limit, rank, world_size))
    return metrics
