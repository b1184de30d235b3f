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


class FlagVote:
    """Requests (stop, pause, checkpoint) that every rank acts on at the same boundary.

    A stop may reach one rank only (a command arrives at rank 0's FIFO), yet
    all ranks must act on it together, between the same two micro-steps, or
    their collectives stop matching. Each rank calls the vote at every
    boundary (between micro-steps and eval batches, the same sequence on every
    rank). The vote ORs the flags over the ranks on a gloo group of its own,
    on CPU tensors: no device synchronisation. It runs asynchronously: the
    flags given at one boundary are the agreed answer at the next, so no rank
    waits for the others in between.
    """

    def __init__(self, world: World):
        self.group = dist.new_group(backend="gloo") if world.distributed else None
        self.pending: tuple[torch.Tensor, object] | None = None

    def __call__(self, flags: list[bool]) -> list[bool]:
        if self.group is None:
            return list(flags)
        agreed = [False] * len(flags)
        if self.pending is not None:
            tensor, work = self.pending
            work.wait()
            agreed = [bool(v) for v in tensor.tolist()]
        tensor = torch.tensor([int(f) for f in flags], dtype=torch.int32)
        self.pending = (tensor, dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self.group, async_op=True))
        return agreed

    def drain(self) -> None:
        """Finish the vote in flight (before the process group goes away)."""
        if self.pending is not None:
            self.pending[1].wait()
            self.pending = None


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
