"""`gptbench run ... --dry-run`: what a run would be, without running it.

The trainer resolves the config for the device it finds (the profile depends
on it), so the dry run asks the trainer process itself (`worker --dry-run`,
which touches no run directory, answers with a `dry_run` event); this module prints its answer: the resolved
config as TOML (a valid `--config` file), then parameters, tokens per step and
the device as comments.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from .. import presets, units
from ..config import Config, ConfigError, estimate_params, to_toml
from ..launcher import Nodes, run_job, trainer_command
from .run import Labels, plan_run


def dry_run(
    preset_name: str | None,
    config_file: Path | None,
    overrides: list[str],
    nodes: Nodes,
    resume: Path | None,
    run_dir: Path | None,
    labels: Labels,
) -> int:
    preset_name, config_file, run_dir = plan_run(preset_name, overrides, run_dir, resume, config_file, labels)
    processes = nodes.nproc_per_node * nodes.nnodes  # the world: tokens/step counts every node's processes
    argv = trainer_command(
        preset_name, run_dir, overrides, resume=resume is not None, config_file=config_file, dry_run=True
    )
    # One process answers for the world it would be (a resume checks its tokens per step against it).
    answers: list[dict] = []
    job = run_job(
        argv,
        lambda e: answers.append(e) if e["event"] == "dry_run" else None,
        env={"WORLD_SIZE": str(processes)},
        timeout=300,
    )
    if job.error:
        raise ConfigError(job.error["message"], job.error["hint"])
    if not answers:
        sys.stderr.write("\n".join(job.stderr_tail[-40:]) + "\n")
        raise ConfigError(f"The dry run failed (exit {job.code}).", "the trainer's output is above.")
    answer = answers[-1]
    cfg = Config.from_dict(answer["config"])
    vocab = cfg.model.vocab_size or presets.TYPICAL_VOCAB[cfg.data.tokenizer]
    params = estimate_params(replace(cfg.model, vocab_size=vocab))
    guessed = not cfg.model.vocab_size and cfg.data.tokenizer == "char"  # known once the text is read
    vocab_note = f", a vocabulary of {vocab} characters assumed: the text decides it" if guessed else ""
    t = cfg.train
    if t.batch_size is None:
        batch = f"batch_size auto (the largest that fits, found at start), {units.count(t.tokens_per_step)} tokens/step"
    else:
        accum = cfg.grad_accum_steps(processes)
        batch = (
            f"{units.count(cfg.tokens_per_step(processes))} tokens/step = batch {t.batch_size} x block "
            f"{cfg.model.block_size} x {processes} process{'es' if processes > 1 else ''} x "
            f"{accum} micro-step{'s' if accum > 1 else ''}"
        )
    lines = [
        f"# dry run: {cfg.preset} · profile {cfg.profile}"
        + (f" · weights from {cfg.model.init_from}" if cfg.model.init_from != "scratch" else ""),
        f"# {units.count(params)} parameters ({params:,}{vocab_note})",
        f"# {batch}",
        f"# {t.max_steps} steps · {answer['device_name']} · {answer['dtype']} · "
        f"compile {'on' if answer['compile'] else 'off'}",
        f"# run dir would be {run_dir}",
    ]
    sys.stdout.write(to_toml(cfg) + "\n".join(lines) + "\n")
    return 0
