"""A Trainer built in this process, on the CPU: what it leaves running when closed,
and what it takes from a checkpoint and what from the device it resumes on."""

from __future__ import annotations

import threading

from test_headless import TINY_CHAR

from workbench import presets
from workbench.engine.device import setup_device
from workbench.engine.distributed import World
from workbench.engine.event_log import EventLog
from workbench.engine.trainer import Trainer


def make_trainer(run_dir, overrides, resume_from=None) -> Trainer:
    cfg = presets.resolve_run("shakespeare-char", None, TINY_CHAR + overrides, "cpu")
    run_dir.mkdir(exist_ok=True)
    return Trainer(cfg, run_dir, setup_device(cfg.train), World(), EventLog(run_dir, None), resume_from)


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
