"""Data-parallel training under torchrun.

torchrun starts one process per GPU (or per CPU worker) and tells each its
RANK, LOCAL_RANK and WORLD_SIZE through the environment. Without torchrun we
are a world of one and nothing here does any communication.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device_kind: str) -> World:
    if "RANK" not in os.environ:
        return World()
    world = World(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]))
    if world.distributed:
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return world


def shutdown(world: World, clean: bool) -> None:
    if world.distributed and dist.is_initialized():
        if clean:
            # Leave together: a rank that tears down while another still talks makes gloo abort.
            # (Not after a failure: the other ranks may never arrive.)
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def main_process_first(world: World):
    """Rank 0 runs the block first (e.g. fills a cache); the others wait, then run it."""
    if world.distributed and not world.is_main:
        dist.barrier()
    yield
    if world.distributed and world.is_main:
        dist.barrier()


def mean_across(world: World, t: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (identity for one process)."""
    if world.distributed:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= world.size
    return t


def any_across(world: World, flags: list[bool]) -> list[bool]:
    """OR each flag over all processes, so every rank takes the same decision."""
    if not world.distributed:
        return flags
    t = torch.tensor([int(f) for f in flags], dtype=torch.int32)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def weights_fingerprint(world: World, model: torch.nn.Module) -> list[list[float]]:
    """Each rank's (sum, sum of squares) of all weights, in float64.

    Identical weights give identical numbers; a rank that drifted shows up at once.
    """
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
        mine = torch.stack([flat.sum(), (flat * flat).sum()])
    if not world.distributed:
        return [mine.tolist()]
    gathered = [torch.zeros_like(mine) for _ in range(world.size)]
    dist.all_gather(gathered, mine)
    return [g.tolist() for g in gathered]
