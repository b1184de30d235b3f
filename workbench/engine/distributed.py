"""Data-parallel training under torchrun.

torchrun starts one process per GPU (or per CPU worker) and tells each its
RANK, LOCAL_RANK and WORLD_SIZE through the environment. Without torchrun we
are a world of one and nothing here does any communication.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# How long a collective of the run may wait for a rank. The longest legitimate
# waits take seconds to minutes: rank 0 writing a big checkpoint to a slow disk
# while the others already sit in the next all-reduce. A rank that hangs for
# longer is lost, and the job had better end than hold every GPU.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
# How long the other ranks wait for rank 0's one-off work at start-up
# (main_process_first): tokenizing a corpus of billions of tokens takes an hour
# or more on a few cores. They wait on a gloo group of their own: an NCCL
# barrier would be killed by its watchdog long before.
MAIN_FIRST_TIMEOUT = timedelta(hours=6)


@dataclass
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1
    waiting_group: object = None  # gloo, MAIN_FIRST_TIMEOUT: where ranks wait for rank 0's one-off work

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device_kind: str, timeout: timedelta = COLLECTIVE_TIMEOUT) -> World:
    if "RANK" not in os.environ:
        return World()
    world = World(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]))
    if world.distributed:
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo", timeout=timeout)
        world.waiting_group = dist.new_group(backend="gloo", timeout=MAIN_FIRST_TIMEOUT)
    return world


def shutdown(world: World, clean: bool) -> None:
    if world.distributed and dist.is_initialized():
        if clean:
            # Leave together: a rank that tears down while another still talks makes gloo abort.
            # (Not after a failure: the other ranks may never arrive.)
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def main_process_first(world: World, what: str):
    """Rank 0 runs the block first (e.g. fills a cache), then the first process of
    every other node, then all the others: a cache is filled once, whether the
    nodes share its disk or each has its own.

    `what` says what is done ("prepare the data"), for the waiting ranks' log line.
    """
    if not world.distributed:
        yield
        return
    turn = 0 if world.is_main else 1 if world.local_rank == 0 else 2
    if turn:
        hours = MAIN_FIRST_TIMEOUT.total_seconds() / 3600
        print(
            f"rank {world.rank}: waiting for rank 0, then the first process of each node, to {what} "
            f"(up to {hours:g} h)",
            file=sys.stderr,
            flush=True,
        )
    for t in range(3):
        if t == turn:
            yield
        if t < 2:  # every rank passes both barriers, in the same order
            dist.barrier(group=world.waiting_group)


def sum_across(world: World, t: torch.Tensor) -> torch.Tensor:
    """The sum of a tensor over all processes (identity for one process)."""
    if world.distributed:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def mean_across(world: World, t: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (identity for one process)."""
    return sum_across(world, t) / world.size if world.distributed else t


def any_rank(world: World, flag: bool, device: torch.device) -> bool:
    """True on every rank when it is true on any (e.g. a target reached): all stop together."""
    if not world.distributed:
        return flag
    t = torch.tensor([int(flag)], dtype=torch.int32, device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(group, obj) -> list:
    """Every rank's `obj` (picklable, CPU), in rank order, on every rank."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj, group=group)
    return out


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
