"""Batches: token stores that cut windows out of a corpus, and the training stream.

Batches follow one rule, which is what makes resume exact and DDP match a single
process: at the start of every optimizer step the stream draws the samples of
the whole global step, a (world_size * grad_accum, batch_size) table, from one
torch.Generator seeded with the run's seed (the same on every rank). Micro-step j
of rank r uses row r * grad_accum + j. So 2 processes x 1 micro-step see exactly
the windows of 1 process x 2 micro-steps, and the stream's state is just the
generator's state and the position in the current step. The table's numbers
depend on its size only, not its shape (the CPU generator fills it in order):
a step of the same tokens cut into other micro-batches, or spread over another
number of processes, draws the same samples, so a resume may change either. The generator lives on
the CPU whatever the device: its state then means the same on a GPU, a CPU or a
Mac, so a run resumes on another kind of device; the table (a few hundred
numbers) goes to the device once per step, without waiting for it.

A corpus that fits on the device lives there (DeviceTokens) and windows are
gathered with no host round trip. A bigger one stays memmapped (MappedTokens);
its windows are read on the CPU by a background thread a step ahead of the
trainer (PrefetchingStream), so the device never waits for the disk.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..data.tokenizers import Tokenizer

if TYPE_CHECKING:
    from .tasks import Task


# ----------------------------------------------------------------------------
# Token stores: windows of a corpus split, as int64 tensors on the device


class DeviceTokens:
    """A split small enough to live on the device: windows are gathered there."""

    def __init__(self, arrays: list[np.ndarray], device: torch.device):
        # Stored as int16, the same bits as uint16: every backend can index
        # int16, and `& 0xFFFF` after widening turns ids >= 32768 back positive.
        self.tokens = torch.from_numpy(np.concatenate(arrays).view(np.int16)).to(device)
        self.rng_device = device  # sample offsets live where the tokens are: no host sync
        self.window_steps = torch.arange(0, device=device)  # 0..n-1 for windows of n tokens, made once

    def __len__(self) -> int:
        return self.tokens.numel()

    def windows(self, offsets: Tensor, n: int) -> Tensor:
        if self.window_steps.numel() != n:
            self.window_steps = torch.arange(n, device=self.tokens.device)
        idx = offsets[:, None] + self.window_steps
        return self.tokens[idx].long() & 0xFFFF


class MappedTokens:
    """A split too big for the device: windows are read from memmaps on the CPU, then uploaded."""

    rng_device = torch.device("cpu")

    def __init__(self, arrays: list[np.ndarray], device: torch.device):
        self.arrays = arrays
        self.starts = np.cumsum([0] + [len(a) for a in arrays])  # shard i starts at starts[i]
        self.device = device

    def __len__(self) -> int:
        return int(self.starts[-1])

    def windows(self, offsets: Tensor, n: int) -> Tensor:
        return self.upload(self.read(offsets, n))

    def read(self, offsets: Tensor, n: int) -> Tensor:
        """The windows as a (B, n) int16 host tensor (uint16 bits), pinned when the device is a GPU."""
        rows = torch.empty((len(offsets), n), dtype=torch.int16, pin_memory=self.device.type == "cuda")
        out = rows.numpy().view(np.uint16)
        for row, start in zip(out, offsets.tolist()):
            self._read_into(row, start)
        return rows

    def upload(self, rows: Tensor) -> Tensor:
        # From pinned memory the copy is asynchronous: the host goes on at once.
        # Widening on the device sends a quarter of the bytes an int64 copy would.
        return rows.to(self.device, non_blocking=True).long() & 0xFFFF

    def _read_into(self, row: np.ndarray, start: int) -> None:
        """Fill `row` with the tokens from `start`, continuing into the next shard(s) when it straddles them."""
        i, filled = int(np.searchsorted(self.starts, start, side="right")) - 1, 0
        while filled < len(row):
            local = start + filled - int(self.starts[i])
            piece = self.arrays[i][local : local + len(row) - filled]
            row[filled : filled + len(piece)] = piece
            filled, i = filled + len(piece), i + 1


# ----------------------------------------------------------------------------
# Datasets and the training stream


class Dataset:
    """What the trainer sees. Subclasses define the samples and how they become (x, y).

    Training samples are numbered 0..n_train-1 (a window offset, a problem);
    `train_batch` turns a (batch_size,) tensor of sample numbers into (x, y).
    """

    tokenizer: Tokenizer
    block_size: int
    n_train: int
    rng_device: torch.device  # where sample numbers are used (where the tokens are)
    task: Task  # what the sampling console poses and how it judges (see tasks/)

    def train_batch(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def train_stream(self, batch_size: int, grad_accum: int, rank: int, world_size: int, seed: int) -> BatchStream:
        return BatchStream(self, batch_size, grad_accum, rank, world_size, seed)

    def val_batches(
        self, batch_size: int, steps: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The same `steps` val batches every time; this rank's share of them: batches rank, rank+world_size, ..."""
        raise NotImplementedError

    def metrics(self, model: torch.nn.Module, final: bool = False) -> dict:
        """Task metrics; `final` marks the run's last eval, where costly ones may run."""
        return {}


class BatchStream:
    """One process's micro-batches, drawn by the global-batch rule (see the top of this file)."""

    def __init__(self, dataset: Dataset, batch_size: int, grad_accum: int, rank: int, world_size: int, seed: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        self.dataset = dataset
        self.grad_accum = grad_accum
        self.first_row = rank * grad_accum
        self.table_shape = (world_size * grad_accum, batch_size)
        self.generator = torch.Generator().manual_seed(seed)  # on the CPU: see the top of this file
        self.device = dataset.rng_device
        self.table: Tensor | None = None
        self.rng_before_table: Tensor | None = None
        self.micro = grad_accum  # micro-batches served from the table; grad_accum: draw the next step's

    def next(self) -> tuple[Tensor, Tensor]:
        return self.dataset.train_batch(self.next_samples())

    def next_samples(self) -> Tensor:
        """The sample numbers of this process's next micro-batch."""
        if self.micro == self.grad_accum:
            self._draw_step()
        row = self.table[self.first_row + self.micro]
        self.micro += 1
        return row

    def _draw_step(self) -> None:
        self.rng_before_table = self.generator.get_state()
        table = torch.randint(self.dataset.n_train, self.table_shape, generator=self.generator)
        if self.device.type == "cuda":  # pinned: the copy overlaps with compute instead of waiting for it
            table = table.pin_memory()
        self.table = table.to(self.device, non_blocking=True)
        self.micro = 0

    def state_dict(self) -> dict:
        """The position at the start of the current step: a checkpoint holds whole steps only."""
        between_steps = self.micro == self.grad_accum
        return {"rng": self.generator.get_state() if between_steps else self.rng_before_table}

    def load_state_dict(self, d: dict) -> None:
        self.generator.set_state(d["rng"])
        self.micro = self.grad_accum  # the next micro-batch draws this step's table again

    def rewind_step(self) -> None:
        """Forget the micro-batches served in this step (a stop mid-step): they come again."""
        if self.micro != self.grad_accum:
            self.load_state_dict(self.state_dict())

    def close(self) -> None:
        """Nothing to stop: this stream reads nothing ahead (see PrefetchingStream)."""


class PrefetchingStream:
    """A BatchStream whose micro-batches are read ahead on a background thread.

    The thread walks its own BatchStream up to `depth` micro-batches ahead of the
    trainer and reads each one's windows from the memmaps into host memory
    (pinned on a GPU); `next` takes them in order and starts their copy to the
    device without waiting for it. Every queued batch carries the stream's state
    as it is once that batch is taken, so `state_dict` describes what the
    trainer consumed (the start of its current step), never what the thread
    read ahead: resume stays exact.
    """

    def __init__(
        self,
        stream: BatchStream,
        read: Callable[[Tensor], Tensor],
        finish: Callable[[Tensor], tuple[Tensor, Tensor]],
        depth: int,
    ):
        self.stream, self.read, self.finish, self.depth = stream, read, finish, depth
        self.consumed = stream.state_dict()
        self.served = 0  # micro-batches the trainer took in its current step
        self._start()

    def next(self) -> tuple[Tensor, Tensor]:
        item = self.queue.get()
        if isinstance(item, BaseException):  # the reader failed: fail here, in the trainer
            raise item
        rows, self.consumed = item
        self.served = (self.served + 1) % self.stream.grad_accum
        return self.finish(rows)

    def state_dict(self) -> dict:
        return self.consumed

    def load_state_dict(self, d: dict) -> None:
        self.close()  # the batches read ahead belong to the old position
        self.stream.load_state_dict(d)
        self.consumed, self.served = self.stream.state_dict(), 0
        self._start()

    def rewind_step(self) -> None:
        """Forget the micro-batches taken in this step (a stop mid-step): they come again."""
        if self.served:
            self.load_state_dict(self.consumed)

    def close(self) -> None:
        """Stop the reader thread and wait for it: it must not outlive the run (it may be in a pinned copy)."""
        self.stopping.set()
        self.thread.join()

    def _start(self) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=self.depth)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._read_ahead, name="batch-prefetch", daemon=True)
        self.thread.start()

    def _read_ahead(self) -> None:
        try:
            while not self.stopping.is_set():
                rows = self.read(self.stream.next_samples())
                self._put((rows, self.stream.state_dict()))
        except BaseException as exc:
            self._put(exc)

    def _put(self, item) -> None:
        while not self.stopping.is_set():  # wait for room, but never past close()
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
