"""What a checkpoint holds: the training state, one row per part that saves and restores itself.

A run continues exactly from last.pt because everything that changes while it
trains is a row of `TrainState.parts`: the checkpoint's key -> an object with
`state_dict()` and `load_state_dict(state)` (torchtitan builds its checkpointer
the same way). Adding a resumable piece of state is one row here, and those two
methods on the piece (see Schedule in optim.py).

best.pt holds the rows a reader of weights needs (WEIGHTS_KEYS). Both files
carry the format and the resolved config, which resume.py checks before a run
continues. Every checkpoint key is named in this file; the other modules read a
checkpoint through the functions at the bottom.

TrainState also decides when last.pt is due (`save_if_due`): the loop only
says what happened at a step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..run_files import BEST_CKPT, LAST_CKPT
from . import checkpoint
from .distributed import World, gather_objects
from .event_log import EventLog

FORMAT_VERSION = 2  # 1: written before the parts table (c77863a and earlier), read through _from_format_1
WEIGHTS_KEYS = ("model", "step", "best_val_loss")  # best.pt: what sampling, eval and export read


@dataclass
class Part:
    """A piece of state given as its two methods (a value TrainState keeps, or an object to adapt)."""

    state_dict: Callable[[], Any]
    load_state_dict: Callable[[Any], None]


class TrainState:
    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        world: World,
        log: EventLog,
        *,
        model: torch.nn.Module,
        optimizer,
        scaler: torch.amp.GradScaler,
        stream,
        schedule,
        clock,
        rng: RngState,
        before_save: Callable[[], None],
    ):
        """before_save: called before last.pt is written (the trainer checks there that the loss is finite)."""
        self.cfg, self.run_dir, self.world, self.log = cfg, run_dir, world, log
        self.step = 0
        self.best_val_loss: float | None = None
        self.saved_step = -1  # the step last.pt holds
        self.rng, self.schedule, self.before_save = rng, schedule, before_save
        # Loaded in this order: `step` first, which the schedule and the RNG continue from.
        self.parts: dict[str, Any] = {
            "step": Part(lambda: self.step, lambda s: setattr(self, "step", s)),
            "best_val_loss": Part(lambda: self.best_val_loss, lambda v: setattr(self, "best_val_loss", v)),
            "model": model,
            # loaded with the device flags (fused, foreach) this optimizer was made with, not the saved ones
            "optimizer": Part(
                optimizer.state_dict,
                lambda s: optimizer.load_state_dict(checkpoint.optimizer_state_for(optimizer, s)),
            ),
            "scaler": Part(scaler.state_dict, lambda s: _load_scaler(scaler, s)),
            "data": stream,  # always the start of a step (batches.py)
            "schedule": schedule,
            "clock": clock,  # elapsed_s, active_s
            "rng": rng,
        }

    # ------------------------------------------------------------------ saving

    def save_if_due(
        self, step: int, *, evaluated: bool = False, target_reached: bool = False, last_step: bool = False
    ) -> None:
        """After `step`: write last.pt when it is due (see save_due)."""
        if self.save_due(step, evaluated=evaluated, target_reached=target_reached, last_step=last_step):
            self.save_last()

    def save_due(self, step: int, *, evaluated: bool, target_reached: bool, last_step: bool) -> bool:
        """last.pt is written when a target is reached (the run ends there), after every eval while
        train.ckpt_every is 0, every ckpt_every steps otherwise, and at a session's last step."""
        every = self.cfg.train.ckpt_every
        due = target_reached or last_step or (evaluated and not every) or bool(every and step % every == 0)
        return due and self.saved_step != step

    def save_last(self) -> None:
        """last.pt, with everything a resume needs; every rank calls it (the RNG row gathers from all ranks)."""
        self.before_save()  # never overwrite a good checkpoint with NaN weights
        self.saved_step = self.step  # on every rank: they decide alike whether a save is due
        self._write(LAST_CKPT, self.parts)
        if self.cfg.train.keep_last and self.world.is_main:
            checkpoint.keep_recent(self.run_dir, self.step, self.cfg.train.keep_last)

    def record_val_loss(self, val_loss: float) -> None:
        """An eval's val loss: best.pt holds the weights of the best so far (rank 0 writes; no collectives)."""
        if self.best_val_loss is None or val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
            self._write(BEST_CKPT, {key: self.parts[key] for key in WEIGHTS_KEYS})

    def _write(self, name: str, parts: dict) -> None:
        # a collective part (the RNG under DDP) is asked on every rank; the others on rank 0 alone
        states = {key: part.state_dict() for key, part in parts.items() if getattr(part, "collective", False)}
        if not self.world.is_main:
            return
        for key, part in parts.items():
            if key not in states:
                states[key] = part.state_dict()
        path = self.run_dir / name
        checkpoint.save_atomic({"format": FORMAT_VERSION, "config": self.cfg.to_dict(), **states}, path)
        self.log.emit("checkpoint", step=self.step, path=str(path), kind=name.removesuffix(".pt"))

    # ----------------------------------------------------------------- loading

    def load(self, ckpt: dict) -> list[str]:
        """Continue from a last.pt read by `read` (on the CPU: load_state_dict puts each tensor where it
        belongs). Returns what the run's log should say about how it continues."""
        for key, part in self.parts.items():
            part.load_state_dict(ckpt[key])
        self.saved_step = self.step
        # what a larger budget or another number of processes changes, now that the step is known
        notes = [self.rng.continue_at(self.step), self.schedule.continue_at(self.step)]
        return [note for note in notes if note]


def _load_scaler(scaler: torch.amp.GradScaler, state: dict) -> None:
    """fp16's loss scale. A bf16 or fp32 run saves an empty (disabled) scaler: only an fp16 run loads one."""
    if scaler.is_enabled() and state:
        scaler.load_state_dict(state)


class RngState:
    """Every RNG the run draws from (torch's CPU and CUDA generators: dropout), as the last completed step
    left it.

    A step of several micro-steps records the RNG as it began: a save between its micro-steps then holds
    the completed step's state, and a stop there rewinds to it (the data stream does the same, batches.py).
    Under DDP each rank draws its own dropout masks, and last.pt keeps each rank's state.
    """

    collective = True  # under DDP, state_dict gathers every rank's state

    def __init__(self, world: World, seed: int, several_micro_steps: bool, group=None):
        self.world, self.seed, self.group = world, seed, group
        self.several_micro_steps = several_micro_steps  # one micro-step has no boundary inside a step
        self.at_step_start: dict | None = None
        self.saved_by: int | None = None  # processes that wrote the loaded state, when not this world

    def begin_step(self) -> None:
        self.at_step_start = checkpoint.rng_state() if self.several_micro_steps else None

    def end_step(self) -> None:
        self.at_step_start = None

    def undo_step(self) -> None:
        """A step stopped mid-way: back to the RNG it began with."""
        if self.at_step_start is not None:
            checkpoint.restore_rng(self.at_step_start)
        self.at_step_start = None

    def state_dict(self) -> dict:
        state = self.at_step_start or checkpoint.rng_state()
        return {"per_rank": gather_objects(self.group, state)} if self.world.distributed else state

    def load_state_dict(self, state: dict) -> None:
        """This rank's RNG as it was; a rank the checkpoint has no state for starts from rank 0's (see continue_at)."""
        states = state.get("per_rank", [state])
        if self.world.rank < len(states) and (len(states) == self.world.size or not self.world.distributed):
            checkpoint.restore_rng(states[self.world.rank])
            return
        checkpoint.restore_rng(states[0])
        self.saved_by = len(states)

    def continue_at(self, step: int) -> str | None:
        """Resumed on another number of processes: the same data order, each rank's own fresh dropout masks."""
        if self.saved_by is None:
            return None
        torch.manual_seed(self.seed + 1_000_003 * step + self.world.rank)
        if not self.world.is_main:
            return None
        return (
            f"resumed on {self.world.size} processes from a checkpoint of {self.saved_by}: dropout masks are "
            "drawn afresh, so this continuation is not bit-exact"
        )


# ------------------------------------------------- reading a checkpoint file


def read(path: Path) -> dict:
    """The checkpoint at path, every tensor on the CPU, in this format (older ones are brought up to it)."""
    ckpt = checkpoint.load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (1, FORMAT_VERSION):
        raise checkpoint.CheckpointError(
            f"{path} is not a gptbench checkpoint (format {FORMAT_VERSION}).",
            "use a checkpoint written by `gptbench run`.",
        )
    return _from_format_1(ckpt) if ckpt["format"] == 1 else ckpt


def _from_format_1(ckpt: dict) -> dict:
    """Format 1 kept the clock's seconds at the top level and the schedule as its anchor alone."""
    if "optimizer" in ckpt:  # a last.pt
        elapsed = ckpt.pop("elapsed_s", 0.0)
        ckpt["clock"] = {"elapsed_s": elapsed, "active_s": ckpt.pop("active_s", elapsed)}
        max_steps = ckpt["config"]["train"]["max_steps"]  # the budget its decay ends at
        ckpt["schedule"] = {"anchor": ckpt.pop("schedule_anchor", None), "max_steps": max_steps}
    return {**ckpt, "format": FORMAT_VERSION}


def can_resume(ckpt: dict) -> bool:
    """A last.pt (best.pt holds the weights alone)."""
    return "optimizer" in ckpt


def saved_config(ckpt: dict) -> dict:
    return ckpt["config"]


def saved_step(ckpt: dict) -> int:
    return ckpt["step"]


def saved_weights(ckpt: dict) -> dict:
    return ckpt["model"]


def saved_world_size(ckpt: dict) -> int:
    """How many processes wrote the checkpoint: a distributed run keeps each rank's RNG state."""
    return len(ckpt["rng"].get("per_rank", [None]))
