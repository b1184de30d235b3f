"""A Trainer built in this process, on the CPU: what it leaves running when closed,
and what it takes from a checkpoint and what from the device it resumes on."""

from __future__ import annotations

import threading

import torch
from command_line import TINY_CHAR

from workbench import presets
from workbench.engine.device import setup_device
from workbench.engine.distributed import World
from workbench.engine.event_log import EventLog
from workbench.engine.resume import plan_resume
from workbench.engine.trainer import Trainer
from workbench.engine.worker import write_run_files


def make_trainer(run_dir, overrides) -> Trainer:
    """A new run's trainer, with its run files written (as the worker does)."""
    cfg = presets.resolve_run("shakespeare-char", None, TINY_CHAR + overrides, "cpu")
    run_dir.mkdir()
    trainer = Trainer(cfg, run_dir, setup_device(cfg.train), World(), EventLog(run_dir, None))
    write_run_files(trainer)
    return trainer


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "batch-prefetch"]


def test_close_stops_the_memmapped_streams_reader_thread(tmp_path):
    """A memmapped corpus is read ahead on a thread; the run must not exit while it is inside a read."""
    trainer = make_trainer(tmp_path / "run", ["data.on_device=false", "train.max_steps=2", "train.eval_every=1000"])
    try:
        assert trainer.run() == "completed"
        assert reader_threads()  # reading ahead for a step that will never come
    finally:
        trainer.close()
    assert not reader_threads()


def test_a_resume_runs_the_optimizer_made_for_this_device(tmp_path):
    """fused/foreach come from the device resumed on, not from the checkpoint (e.g. one saved on a Mac)."""
    run_dir = tmp_path / "run"
    trainer = make_trainer(run_dir, ["train.max_steps=2", "train.eval_every=1000"])
    try:
        assert trainer.run() == "completed"
        made = [{k: g[k] for k in ("fused", "foreach")} for g in trainer.optimizer.param_groups]
    finally:
        trainer.close()
    assert all(flags["fused"] for flags in made)  # AdamW is fused on the CPU
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    for group in ckpt["optimizer"]["param_groups"]:
        group.update(fused=False, foreach=True)  # as MPS makes it
    torch.save(ckpt, run_dir / "last.pt")

    cfg, resume_from = plan_resume(run_dir, ["train.max_steps=4"])
    resumed = Trainer(cfg, run_dir, setup_device(cfg.train), World(), EventLog(run_dir, None), resume_from)
    try:
        assert [{k: g[k] for k in ("fused", "foreach")} for g in resumed.optimizer.param_groups] == made
        assert resumed.run() == "completed" and resumed.step == 4
    finally:
        resumed.close()
