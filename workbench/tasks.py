"""The tasks a model is evaluated on: one row each, the only list of their names.

`train.eval_tasks` takes the text tasks, `gptbench eval --task` takes them all,
and engine/tasks builds each from its row (`module`, `cls`). Adding a task is
its class under engine/tasks/ plus one row here.

Plain Python (no torch): the CLI checks and lists tasks before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    name: str
    help: str  # one line: what it scores
    text: bool  # a text task: any language model's eval may add it (train.eval_tasks)
    tokenizer: str | None = None  # the data.tokenizer it needs (None: any)
    module: str = ""  # engine/tasks/MODULE.py holds its class ...
    cls: str = ""  # ... named CLS, built as CLS(tokenizer, data)


TASKS = {
    t.name: t
    for t in (
        TaskInfo(
            "hellaswag",
            "HellaSwag completion accuracy (build-nanogpt's scoring; 10,042 examples)",
            text=True,
            tokenizer="gpt2",
            module="hellaswag",
            cls="HellaSwag",
        ),
        TaskInfo("ppl", "perplexity on a text file", text=True, module="perplexity", cls="Perplexity"),
        TaskInfo("addition", "held-out accuracy of a run trained on addition, on its own problems", text=False),
    )
}

TEXT_TASKS = tuple(name for name, t in TASKS.items() if t.text)
