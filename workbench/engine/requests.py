"""Requests: what the user asks of a training run (stop, pause, checkpoint, samples) until it is done.

Requests arrive any time: a signal, or a command on RUN_DIR/control.fifo
(read by rank 0 with one non-blocking read: a syscall, not a device sync).
The trainer acts on them only at boundaries (between micro-steps, steps and
eval batches), and under DDP every rank together: `agree()` is an asynchronous
vote on a CPU process group (distributed.FlagVote).

A live sample is decoded from the live model in slices at those boundaries,
each about SAMPLE_SHARE of the time since the last boundary, so training keeps
its pace while the answer streams; the time is the clock's idle time.

The vote also carries one flag of the clock's: a step event is due by the wall
clock (train.step_event_every_s). Logging a step is a collective, so every rank
must log the same one: `step_event_due` is what the ranks agreed on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ..control import CommandInbox
from .clock import RunClock
from .distributed import FlagVote
from .sampler import SampleRequest, SampleSession

SAMPLE_SHARE = 0.1  # a live sample may take this fraction of the time between two boundaries


class Requests:
    def __init__(
        self,
        inbox: CommandInbox | None,
        vote: FlagVote,
        clock: RunClock,
        start_sample: Callable[[SampleRequest], SampleSession],
        emit: Callable[..., None],
        sync_device: Callable[[], None],
    ):
        """inbox: rank 0's command FIFO (None on the other ranks); start_sample: a session on the live model."""
        self.inbox, self.vote, self.clock = inbox, vote, clock
        self.start_sample, self.emit, self.sync_device = start_sample, emit, sync_device
        self.stop = self.pause = self.checkpoint = False  # asked for, not yet agreed on
        self.stop_reason = "stopped"  # run_finished's reason for a stop: "pruned" when a sweep's pruner asked
        self.samples: deque[SampleRequest] = deque()
        self.live_sample: SampleSession | None = None
        self.last_boundary = time.perf_counter()
        self.step_event_due = False  # agreed by every rank: the next step is logged, for the wall clock

    def read_commands(self, step: int) -> None:
        """Turn the commands that arrived on the FIFO into requests (rank 0 only)."""
        if not self.inbox:
            return
        for cmd in self.inbox.poll():
            name = cmd.get("cmd")
            if name == "stop":
                self.stop = True
                if cmd.get("reason") == "pruned":
                    self.stop_reason = "pruned"
            elif name == "pause":
                self.pause = True
            elif name == "resume":
                self.pause = False
            elif name == "checkpoint":
                self.checkpoint = True
            elif name == "sample":
                self.samples.append(SampleRequest.from_command(cmd))
            elif name == "sample_cancel":
                self._cancel_sample(str(cmd.get("id")), step)

    def agree(self, step_event_due: bool = False) -> tuple[bool, bool, bool]:
        """(stop, pause, checkpoint) as every rank takes them; a checkpoint request is honoured once.

        Every vote carries the same four flags (the vote's answer is the previous call's flags);
        the fourth, a step event due by the wall clock, is kept in `step_event_due` until the
        trainer logs a step.
        """
        stop, pause, save, due = self.vote([self.stop, self.pause, self.checkpoint, step_event_due])
        self.checkpoint = False
        self.step_event_due = self.step_event_due or due
        return stop, pause, save

    def at_boundary(self, step: int) -> tuple[bool, bool, bool]:
        """Between micro-steps, steps and eval batches: read commands, decode a slice of the live
        sample, and agree on (stop, pause, checkpoint) and on a step event due by the wall clock."""
        self.read_commands(step)
        self.advance_sample(step, since=self.last_boundary)
        return self.agree(step_event_due=self.clock.step_event_due())

    def mark_boundary(self) -> None:
        """The boundary's work is done (a checkpoint, a pause): the next sample slice is measured from now."""
        self.last_boundary = time.perf_counter()

    def while_paused(self, step: int) -> tuple[bool, bool, bool]:
        """One turn of a pause: commands, a slice of sample (or a short wait), and the vote."""
        self.read_commands(step)
        if not self.advance_sample(step, budget_s=0.05):  # nothing to decode: wait a little
            time.sleep(0.05)
        return self.agree()

    def advance_sample(self, step: int, since: float | None = None, budget_s: float = 0.0) -> bool:
        """Decode a slice of the live sample, if any. True when something was decoded.

        The slice takes SAMPLE_SHARE of the time `since` the last boundary (measured
        after the device caught up: on a GPU, the CPU only queues work), or budget_s.
        """
        if self.live_sample is None:
            if not self.samples:
                return False
            self.emit("status", state="sampling", step=step)
            self.live_sample = self.start_sample(self.samples.popleft())
        self.sync_device()  # queued training work is training time, not sampling time
        with self.clock.idle():
            budget_s = SAMPLE_SHARE * (time.perf_counter() - since) if since is not None else budget_s
            try:
                done = self.live_sample.advance(budget_s)
            except Exception as exc:  # a request we did not foresee must never end the training run
                self.emit(
                    "error",
                    kind="prompt",
                    id=self.live_sample.req.id,
                    message=f"Sampling failed: {type(exc).__name__}: {exc}",
                    hint="check the sampling settings (max_new_tokens, temperature, top_k, top_p).",
                )
                done = True
        if done:
            self.live_sample = None
            if not self.samples:
                self.emit("status", state="paused" if self.pause else "training", step=step)
        return True

    def _cancel_sample(self, sample_id: str, step: int) -> None:
        if self.live_sample is not None and self.live_sample.req.id == sample_id:
            self.live_sample.cancel()
            self.live_sample = None
            self.emit("status", state="paused" if self.pause else "training", step=step)
        else:
            self.samples = deque(r for r in self.samples if r.id != sample_id)

    def cancel_live_sample(self) -> None:
        """The run stops: the answer being streamed ends, marked cancelled."""
        if self.live_sample is not None:
            self.live_sample.cancel()
            self.live_sample = None
