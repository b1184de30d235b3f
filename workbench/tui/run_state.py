"""What the app knows about one run, rebuilt from its events.

`RunState.apply(event)` is the only way in: a live run, an attached run and a
replayed run all feed the same events through it, so they all look the same.
Everything shown on the dashboard (curves, stats, status) is derived here from
event fields and event timestamps, never from the UI's wall clock, so a
recorded `events.jsonl` always renders the same screen.

Plain Python: no Textual, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..progress import eta_seconds, format_duration

# The ETA is taken at the pace of the last few step events (as headless prints it).
ETA_WINDOW = 5
# A request that may wait longer than this for the next micro-step boundary says so.
LONG_WAIT_S = 5.0
# A command the user gave, and the states of the trainer that answer it.
ANSWERED_BY = {
    "stop": ("stopping", "finished", "crashed"),
    "pause": ("paused", "stopping", "finished", "crashed"),
    "resume": ("starting", "compiling", "training", "evaluating", "sampling", "stopping", "finished", "crashed"),
}


@dataclass
class Series:
    """One metric over training: parallel lists of step, elapsed seconds and value."""

    steps: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    version: int = 0  # bumped on every change, so plots know when to redraw

    def add(self, step: int, elapsed: float, value: float | None) -> None:
        # A resumed run repeats the steps after its last checkpoint: the new
        # points replace the old ones from there on.
        while self.steps and self.steps[-1] >= step:
            self.steps.pop()
            self.times.pop()
            self.values.pop()
        if value is not None:
            self.steps.append(step)
            self.times.append(elapsed)
            self.values.append(value)
        self.version += 1

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class Crash:
    """Why a run ended badly, as far as the app can tell."""

    exit_code: int | None  # None when the trainer was not our child (attached run)
    stderr_tail: list[str]
    error: dict | None  # the last `error` event, if the trainer managed to send one


class RunState:
    """The dashboard's model of a run: curves, latest numbers, status."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.started: dict | None = None  # the latest run_started event
        self.config: dict = {}
        self.status = "starting"
        self.last_step: dict | None = None
        self.recent_steps: list[dict] = []  # the last ETA_WINDOW + 1 step events
        self.best_val_loss: float | None = None
        self.metrics: dict = {}
        self.last_checkpoint: dict | None = None
        self.last_error: dict | None = None
        self.finished: dict | None = None  # the run_finished event
        self.crash: Crash | None = None
        self.series = {name: Series() for name in ("loss", "val_loss", "lr", "grad_norm", "tokens_per_sec")}
        self.task_series: dict[str, Series] = {}  # the task's eval metrics (addition: accuracy, accuracy_all)
        self.system: dict | None = None  # the latest system event
        self.progress: dict | None = None  # the step in progress, while a long one reports its micro-steps
        self.cpu_threads: int | None = None  # the CPU threads the trainer uses now, once it changed them
        self.requested: str | None = None  # a command sent and not yet answered by a status event
        self.bad_events = 0  # events that did not parse as their type (a corrupt events.jsonl)
        self.version = 0  # bumped on every applied event

    # -- feeding -----------------------------------------------------------

    def apply(self, event: dict) -> bool:
        """Take in one event; False (and counted in bad_events) if it lacks what its type needs."""
        handler = getattr(self, f"_on_{event['event']}", None)
        try:
            if handler:
                handler(event)
        except (KeyError, TypeError, ValueError, AttributeError):
            self.bad_events += 1
            return False
        finally:
            self.version += 1
        return True

    def request(self, command: str) -> None:
        """The user sent `command`; the status shows it as requested until the trainer answers."""
        self.requested = command
        self.version += 1

    def _on_run_started(self, e: dict) -> None:
        self.started = e
        self.config = e.get("config") or {}
        self.finished = None  # a resume re-opens a run
        self.crash = None
        self.recent_steps = []

    def _on_step(self, e: dict) -> None:
        # elapsed_s goes on across resumes (the trainer keeps it in the checkpoint), so curves never jump back.
        step, elapsed = e["step"], e.get("elapsed_s") or 0.0
        self.last_step = e
        if self.progress and self.progress["step"] <= step:
            self.progress = None
        # The ETA's pace is the trainer's active time (paused and sampling time left out), where it reports one.
        self.recent_steps = [*self.recent_steps[-ETA_WINDOW:], {**e, "elapsed_s": e.get("active_s", elapsed)}]
        for name in ("loss", "lr", "grad_norm", "tokens_per_sec"):
            self.series[name].add(step, elapsed, e.get(name))
        if self.status in ("starting", "compiling"):
            self.status = "training"
        if self.requested == "resume":  # a pause and a resume read together change no state: steps answer it
            self.requested = None

    def _on_eval(self, e: dict) -> None:
        # Evals carry no elapsed time of their own; they belong to the step just logged.
        elapsed = self.elapsed_s or 0.0
        self.series["val_loss"].add(e["step"], elapsed, e.get("val_loss"))
        val = e.get("val_loss")
        if val is not None and (self.best_val_loss is None or val < self.best_val_loss):
            self.best_val_loss = val
        self.metrics = e.get("metrics") or self.metrics
        for name, value in (e.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.task_series.setdefault(name, Series()).add(e["step"], elapsed, value)

    def _on_status(self, e: dict) -> None:
        self.status = e["state"]
        if self.requested and self.status in ANSWERED_BY[self.requested]:
            self.requested = None

    def _on_progress(self, e: dict) -> None:
        if e["stage"] == "micro_step":
            self.progress = e

    def _on_system(self, e: dict) -> None:
        self.system = e

    def _on_log(self, e: dict) -> None:
        if "threads" in e:  # the trainer took another share of the CPU cores
            self.cpu_threads = e["threads"]

    def _on_checkpoint(self, e: dict) -> None:
        self.last_checkpoint = e

    def _on_error(self, e: dict) -> None:
        if e.get("kind") != "prompt":  # a bad sampling prompt is the console's business
            self.last_error = e

    def _on_run_finished(self, e: dict) -> None:
        self.finished = e
        self.progress = None  # a step stopped mid-way is undone: its micro-steps count no more
        self.status = "crashed" if e["reason"] == "error" else "finished"
        if e.get("best_val_loss") is not None:
            self.best_val_loss = e["best_val_loss"]
        self.metrics = e.get("metrics") or self.metrics
        if e["reason"] == "error":
            self.crash = Crash(exit_code=None, stderr_tail=[], error=self.last_error)

    def mark_crashed(self, exit_code: int | None, stderr_tail: list[str]) -> None:
        """The trainer is gone without a clean run_finished (exception, OOM, killed)."""
        self.status = "crashed"
        self.requested = None
        self.crash = Crash(exit_code=exit_code, stderr_tail=list(stderr_tail), error=self.last_error)
        self.version += 1

    def mark_resuming(self) -> None:
        """A new trainer is starting from last.pt; its run_started will follow."""
        self.status = "starting"
        self.crash = None
        self.version += 1

    # -- derived numbers -----------------------------------------------------

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def preset(self) -> str:
        return self.config.get("preset", "")

    @property
    def step(self) -> int:
        step = self.last_step["step"] if self.last_step else 0
        return max(step, self.finished["step"]) if self.finished else step

    @property
    def max_steps(self) -> int:
        return self.config.get("train", {}).get("max_steps", 0)

    @property
    def elapsed_s(self) -> float | None:
        """The run's time so far, across resumes."""
        return self.last_step.get("elapsed_s") if self.last_step else None

    @property
    def eta_s(self) -> float | None:
        """Seconds to max_steps at the pace of the last few logged steps (paused and sampling time left out)."""
        if self.finished or self.status in ("paused", "crashed"):
            return None
        return eta_seconds(self.recent_steps, self.max_steps, window=ETA_WINDOW)

    @property
    def micro_step(self) -> str | None:
        """ "step 3 · micro 7/32" while a long step reports its micro-steps."""
        p = self.progress
        if not p or self.is_over:
            return None
        return f"step {p['step']:,} · micro {p['done']}/{p['total']}"

    @property
    def boundary_wait(self) -> str | None:
        """How long a request or a live sample waits for the next micro-step boundary ("~40 s"),
        when that is long: at most one micro-step, at the pace the trainer reported."""
        p = self.progress
        if not p or self.is_over or p.get("micro_s", 0) < LONG_WAIT_S:
            return None
        seconds = p["micro_s"]
        return f"~{seconds:.0f} s" if seconds < 90 else f"~{format_duration(seconds)}"

    @property
    def device_name(self) -> str | None:
        """The device as run_started names it, with the CPU threads in use now."""
        started = self.started or {}
        if self.cpu_threads and started.get("device") == "cpu":
            return f"cpu ({self.cpu_threads} thread{'s' if self.cpu_threads != 1 else ''})"
        return started.get("device_name") or started.get("device")

    @property
    def tokens_seen(self) -> int | None:
        if self.progress and not self.is_over:  # a long step's micro-steps so far
            return self.progress["tokens_seen"]
        if not self.last_step:
            return None
        seen = self.last_step.get("tokens_seen")
        if seen is None and self.started:
            seen = self.last_step["step"] * self.started.get("tokens_per_step", 0)
        return seen

    @property
    def is_over(self) -> bool:
        return self.status in ("finished", "crashed")

    @property
    def badge(self) -> str:
        """The status as the header shows it: a command waiting for its answer, how a run ended."""
        if self.requested:
            return f"{self.requested} requested"
        if self.status == "finished" and self.finished:
            return {"completed": "completed", "stopped": "stopped"}.get(self.finished["reason"], "finished")
        return self.status
