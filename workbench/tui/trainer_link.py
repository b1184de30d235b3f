"""The two ways a run screen is connected to a trainer.

- `LaunchedTrainer`: the app started the trainer itself. Its stdout pipe is
  read on the launcher's reader threads; a daemon thread waits for it to exit.
  It is always started detached (its own session) so that it can keep training
  after the app quits.
- `FollowedRun`: someone else started it (`gptbench run --headless` in another
  terminal), or it is long finished. A thread worker tails its `events.jsonl`,
  another watches whether a trainer still listens on the run's control FIFO.

Both deliver events through an `EventBatch` to the owning screen and send
commands through the run directory's control FIFO, so everything above them is
the same for a run we launched, one we attached to, and one we replay.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from textual.dom import DOMNode
from textual.worker import get_current_worker

from ..control import is_live, send_command
from ..launcher import EngineProcess
from ..runs import follow_events
from .messages import EventBatch, TrainerExited, TrainerLiveness

# The follower's thread workers check for cancellation this often: Textual waits for them on exit.
POLL_S = 0.2
LIVENESS_POLL_S = 1.0
FINISH_GRACE_S = 3.0  # how long a vanished FIFO waits for the run_finished before it means a crash


class LaunchedTrainer:
    """A trainer subprocess started by the app."""

    owns_process = True

    def __init__(self, owner: DOMNode, argv: list[str], run_dir: Path):
        self.owner = owner
        self.run_dir = Path(run_dir)
        self.batch = EventBatch(owner, "trainer")
        self.closed = False
        self.process = EngineProcess(
            argv, self.run_dir, on_event=self.batch.add_event, on_stderr=self.batch.add_stderr, detach=True
        )

    def start(self) -> None:
        self.process.start()
        # A daemon thread blocked in wait() costs nothing while the trainer runs
        # (a polling Textual worker would wake up all the time) and does not
        # hold the app back when it quits and leaves the trainer running.
        threading.Thread(target=self._wait_for_exit, name="trainer-exit", daemon=True).start()

    def _wait_for_exit(self) -> None:
        code = self.process.wait()  # also waits until its output is fully read
        if not self.closed:
            self.owner.post_message(TrainerExited(exit_code=code, stderr_tail=list(self.process.stderr_tail)))

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def send(self, cmd: str, **fields) -> None:
        send_command(self.run_dir, cmd, **fields)

    def kill(self) -> None:
        """End the trainer now, and what it started (torchrun's workers): its own session is its process group."""
        self.process.signal(signal.SIGKILL)

    def close(self) -> None:
        """Stop watching; the process itself is left alone (it may outlive us)."""
        self.closed = True


class FollowedRun:
    """A run read from its directory: history first, then live events if it trains."""

    owns_process = False

    def __init__(self, owner: DOMNode, run_dir: Path):
        self.owner = owner
        self.run_dir = Path(run_dir)
        self.batch = EventBatch(owner, "trainer")
        self.live: bool | None = None  # None until the first look at the control FIFO
        self.was_live = False  # a trainer listened while we followed (it has ended if live is False now)
        self.finished_read = False  # the follower has passed a run_finished (of the latest run_started)

    def start(self) -> None:
        self.owner.run_worker(
            self._follow, thread=True, group="trainer", name="following events.jsonl", exit_on_error=False
        )
        self.owner.run_worker(
            self._watch_liveness, thread=True, group="trainer", name="watching the control FIFO", exit_on_error=False
        )

    def _follow(self) -> None:
        worker = get_current_worker()

        def say_damaged(line: str) -> None:  # said in the log, where it happened; the run's state never sees it
            self.batch.add_stderr(f"skipped a damaged line of events.jsonl (not an event): {line.strip()[:60]!r}")

        for event in follow_events(self.run_dir, lambda: worker.is_cancelled, poll_s=POLL_S, on_damaged=say_damaged):
            self.batch.add_event(event)
            if event["event"] in ("run_started", "run_finished"):
                self.finished_read = event["event"] == "run_finished"

    def _watch_liveness(self) -> None:
        worker = get_current_worker()
        next_check = 0.0
        while not worker.is_cancelled:
            if time.monotonic() >= next_check:
                live = is_live(self.run_dir)
                if live != self.live:
                    if self.live and not live:
                        self._let_the_follower_catch_up()
                    self.live = live
                    self.was_live = self.was_live or live
                    self.owner.post_message(TrainerLiveness(live))
                next_check = time.monotonic() + LIVENESS_POLL_S
            time.sleep(POLL_S)

    def _let_the_follower_catch_up(self) -> None:
        """The trainer closes its FIFO right after writing run_finished; give the
        follower a moment to read and post it, so a clean finish never looks like a crash."""
        deadline = time.monotonic() + FINISH_GRACE_S
        while not self.finished_read and time.monotonic() < deadline:
            time.sleep(POLL_S)

    @property
    def running(self) -> bool:
        return bool(self.live)

    def send(self, cmd: str, **fields) -> None:
        send_command(self.run_dir, cmd, **fields)

    def close(self) -> None:
        self.owner.workers.cancel_group(self.owner, "trainer")
