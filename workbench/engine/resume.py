"""Continuing a run (`--resume`): every check that can refuse, before anything is written.

A refused resume must leave the run directory exactly as it was: no `error`
or `run_finished` event appended to a good run, no new config.json. So the
worker calls `plan_resume` before it opens the event log, and only the
tokenizer check (it needs the data) comes later, still before the first event.

What may change on resume: the keys whose field says `resume="changeable"`
(config.py; README's key table shows them): the budget, schedule, cadence,
device, compile and logging. The rest is fixed: the model and the data (the
weights and the vocabulary depend on them), and the train keys that the
optimizer state and the data position depend on. A key is fixed unless its
field says otherwise, so a new key cannot slip through.

How a step is cut may change too: the micro-batch (a smaller GPU, or `auto`
probing again) and the number of processes, as long as a step still takes
the same number of tokens. The gradient accumulation follows, and the data
position holds: a step draws the same samples whatever cuts it (batches.py).
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config, ConfigError, all_keys, fixed_on_resume, parse_override, set_value, validate, value_of
from ..run_files import CONFIG_FILE, LAST_CKPT, read_json
from . import checkpoint, train_state


def changeable_keys() -> list[str]:
    return [k for k in all_keys() if not fixed_on_resume(k)]


def plan_resume(run_dir: Path, overrides: list[str], world_size: int = 1) -> tuple[Config, dict]:
    """(the config to continue with, last.pt loaded on the CPU), or a ConfigError that changes nothing.

    world_size: the processes that will continue the run.
    """
    saved = read_json(run_dir / CONFIG_FILE)
    if not saved:
        raise ConfigError(
            f"{run_dir} has no config.json to resume from.", "pass the directory of a run started by `gptbench run`."
        )
    cfg = Config.from_dict(saved)
    for override in overrides:  # e.g. a longer train.max_steps
        set_value(cfg, *parse_override(override))
    validate(cfg)
    ckpt = train_state.read(run_dir / LAST_CKPT)
    if not train_state.can_resume(ckpt):
        raise checkpoint.CheckpointError(
            f"{run_dir / LAST_CKPT} holds weights only and cannot resume training.",
            "resume from a last.pt written by `gptbench run`.",
        )
    checkpointed = Config.from_dict(train_state.saved_config(ckpt))
    differing = _differing_fixed_keys(checkpointed, cfg)
    if differing:
        raise ConfigError(
            "A resumed run keeps its model, data and optimizer: " + "; ".join(differing) + ".",
            f"only these may change on resume: {', '.join(changeable_keys())}; start a new run for the others.",
        )
    _check_tokens_per_step(checkpointed, train_state.saved_world_size(ckpt), cfg, world_size)
    step = train_state.saved_step(ckpt)
    if step >= cfg.train.max_steps:
        raise ConfigError(
            f"The run already reached step {step} of train.max_steps={cfg.train.max_steps}.",
            f"resume with a larger budget, e.g. --set train.max_steps={step * 2}.",
        )
    return cfg, ckpt


def _check_tokens_per_step(checkpointed: Config, saved_world: int, asked: Config, world_size: int) -> None:
    """A step must keep its size (the optimizer and the schedule were tuned to it); how it is cut may change."""
    before, after = checkpointed.tokens_per_step(saved_world), asked.tokens_per_step(world_size)
    if before != after:
        t = asked.train
        raise ConfigError(
            f"A resumed run keeps its tokens per step: its steps took {before:,} tokens, and this "
            f"resume's (train.batch_size={t.batch_size or 'auto'} on {world_size} process(es)) would take {after:,}.",
            f"set train.tokens_per_step={before}"
            + (" and train.grad_accum=0" if t.grad_accum else "")
            + ": the micro-steps then add up to it, whatever the micro-batch and the processes.",
        )


def _differing_fixed_keys(checkpointed: Config, asked: Config) -> list[str]:
    """'model.n_layer: checkpoint 3, asked 5' for every fixed key whose value differs."""
    lines = []
    for key in filter(fixed_on_resume, all_keys()):
        before, after = value_of(checkpointed, key), value_of(asked, key)
        if before != after:
            lines.append(f"{key}: checkpoint {before!r}, asked {after!r}")
    return lines
