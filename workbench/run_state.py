"""What is known about one run, folded from its events: the one reading of a run.

`RunState.apply(event)` is the only way in. The app's dashboard and compare
view, the runs table (`runs.summarize`), `gptbench logs` and the headless
line all fold the same events through it, so they agree on the step, the
best val loss, the ETA, the elapsed time and whether the run has finished.
Everything is derived from event fields and event timestamps, never from a
reader's wall clock, so a recorded `events.jsonl` always reads the same.

`describe(event)` is the one sentence for each event worth a log line.

Plain Python: no Textual, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import metrics, units

# A command the user gave, and the states of the trainer that answer it.
ANSWERED_BY = {
    "stop": ("stopping", "finished", "crashed"),
    "pause": ("paused", "stopping", "finished", "crashed"),
    "resume": ("starting", "compiling", "training", "evaluating", "sampling", "stopping", "finished", "crashed"),
}
# A request that may wait longer than this for the next micro-step boundary says so.
LONG_WAIT_S = 5.0
# How a run ended, by run_finished's reason (what the runs table calls it).
OUTCOMES = {"completed": "completed", "stopped": "stopped", "pruned": "pruned", "error": "error"}


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
    """A run as its events tell it: curves, latest numbers, status, clock."""

    def __init__(self, run_dir: Path | str = ""):
        self.run_dir = Path(run_dir)
        self.first_started_t: float | None = None  # when the run first started (unix time)
        self.started: dict | None = None  # the latest run_started event
        self.config: dict = {}
        self.max_steps = 0  # the latest run_started's train.max_steps
        self.status = "starting"
        self.starting_pid: int | None = None  # a trainer that said `starting` and has not started yet
        self.last_step: dict | None = None
        self.eval_step = 0  # the step of the latest eval
        self.session_first_step: dict | None = None  # this session's first step event: where the ETA's pace starts
        self.best_val_loss: float | None = None
        self.task_scores: dict = {}  # the eval task's own numbers (addition: accuracy), not metrics.py's rows
        self.last_checkpoint: dict | None = None
        self.last_error: dict | None = None
        self.finished: dict | None = None  # the run_finished of the run's last start (None: not finished)
        self.crash: Crash | None = None
        self.series = {m.key: Series() for m in metrics.plotted()}
        self.task_series: dict[str, Series] = {}  # the task's eval metrics (addition: accuracy, accuracy_all)
        self.system: dict | None = None  # the latest system event
        self.progress: dict | None = None  # the step in progress, while a long one reports its micro-steps
        self.cpu_threads: int | None = None  # the CPU threads the trainer uses now, once it changed them
        self.requested: str | None = None  # a command sent and not yet answered by a status event
        self.events = 0  # events applied (bad ones included)
        self.bad_events = 0  # events that did not parse as their type (a corrupt events.jsonl)
        self.version = 0  # bumped on every applied event
        # The clock: the run's elapsed seconds at event time `clock_t` (None: stopped, between sessions),
        # and the time of the latest event. Elapsed runs on between step events (a pause, an eval).
        self.clock_elapsed: float | None = None
        self.clock_t: float | None = None
        self.last_t: float | None = None

    # -- feeding -----------------------------------------------------------

    def apply(self, event: dict) -> bool:
        """Take in one event; False (and counted in bad_events) if it lacks what its type needs."""
        handler = getattr(self, f"_on_{event['event']}", None)
        self.events += 1
        try:
            if handler:
                handler(event)
            if isinstance(event.get("t"), (int, float)):
                self.last_t = float(event["t"])
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
        max_steps = int(e["config"]["train"]["max_steps"])
        if self.first_started_t is None and isinstance(e.get("t"), (int, float)):
            self.first_started_t = e["t"]
        self.started = e
        self.config = e["config"]
        self.max_steps = max_steps
        self.status = "starting"
        self.starting_pid = None
        self.finished = None  # a resume re-opens a run
        self.crash = None
        self.session_first_step = None
        # The session's clock starts at the time its checkpoint recorded (older trainers: at its first step).
        self._stop_clock()
        if e.get("elapsed_s") is not None:
            self.clock_elapsed, self.clock_t = float(e["elapsed_s"]), e.get("t")

    def _on_step(self, e: dict) -> None:
        # elapsed_s goes on across resumes (the trainer keeps it in the checkpoint), so curves never jump back.
        step, elapsed = int(e["step"]), float(e.get("elapsed_s") or 0.0)
        self.last_step = e
        if self.progress and self.progress["step"] <= step:
            self.progress = None
        if self.session_first_step is None:
            self.session_first_step = e
        for m in metrics.of_event("step"):
            if m.key in self.series:
                self.series[m.key].add(step, elapsed, e.get(m.key))
        self.clock_elapsed, self.clock_t = elapsed, e.get("t")
        if self.status in ("starting", "compiling"):
            self.status = "training"
        if self.requested == "resume":  # a pause and a resume read together change no state: steps answer it
            self.requested = None

    def _on_eval(self, e: dict) -> None:
        step, val = int(e["step"]), e.get("val_loss")
        val = None if val is None else float(val)
        task = e.get("metrics") or {}
        if not isinstance(task, dict):
            raise TypeError(f"metrics is a {type(task).__name__}")
        # Evals carry no elapsed time of their own; they belong to the step just logged.
        elapsed = (self.last_step.get("elapsed_s") or 0.0) if self.last_step else 0.0
        for m in metrics.of_event("eval"):
            if m.key in self.series:
                self.series[m.key].add(step, elapsed, e.get(m.key))
        if val is not None and (self.best_val_loss is None or val < self.best_val_loss):
            self.best_val_loss = val
        self.task_scores = task or self.task_scores
        for name, value in task.items():
            if metrics.is_number(value):
                self.task_series.setdefault(name, Series()).add(step, elapsed, value)
        self.eval_step = step

    def _on_status(self, e: dict) -> None:
        self.status = e["state"]
        if self.status == "starting":  # a new trainer for this run: it is not finished until it says so
            self.finished = None
            self.starting_pid = e.get("pid")
            self._stop_clock()  # the time between two trainers is no time of the run's
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
        step = int(e["step"])
        task = e.get("metrics") or {}
        if not isinstance(task, dict):
            raise TypeError(f"metrics is a {type(task).__name__}")
        self.finished = {**e, "step": step}
        self.starting_pid = None
        self.progress = None  # a step stopped mid-way is undone: its micro-steps count no more
        self.status = "crashed" if e["reason"] == "error" else "finished"
        if e.get("best_val_loss") is not None:
            self.best_val_loss = float(e["best_val_loss"])
        self.task_scores = task or self.task_scores
        if e["reason"] == "error":
            self.crash = Crash(exit_code=None, stderr_tail=[], error=self.last_error)
        self.last_t = e.get("t", self.last_t)
        self._stop_clock()

    def _stop_clock(self) -> None:
        """Hold the elapsed time where the latest event left it, until the next session's clock starts."""
        self.clock_elapsed = self.elapsed_s
        self.clock_t = None

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
        step = int(self.last_step["step"]) if self.last_step else 0
        step = max(step, self.eval_step)
        return max(step, self.finished["step"]) if self.finished else step

    @property
    def elapsed_s(self) -> float | None:
        """The run's wall time so far, across resumes, up to its latest event: it runs on through a pause
        or an eval (the trainer's events keep coming: status, system), stops at run_finished."""
        if self.clock_elapsed is None:
            return None
        if self.clock_t is None or self.last_t is None:
            return self.clock_elapsed
        return self.clock_elapsed + max(0.0, self.last_t - self.clock_t)

    @property
    def eta_s(self) -> float | None:
        """Seconds to max_steps at this session's pace so far: active time (paused and sampling time
        left out) per step since its first step event (so the first step's compile is left out too).
        Evals and checkpoints count into the pace, so the ETA holds steady across them. Before two
        steps have been logged, a long step's micro-steps give the pace (`micro_s` each)."""
        return self._eta()[0]

    def _eta(self) -> tuple[float | None, dict | None]:
        """The ETA and the event it was reckoned at."""
        if self.finished or self.status in ("paused", "crashed"):
            return None, None
        a, b, p = self.session_first_step, self.last_step, self.progress
        if a is not None and b is not None and b["step"] > a["step"]:
            active = "active_s" if "active_s" in a and "active_s" in b else "elapsed_s"  # older runs: no active_s
            per_step = (b[active] - a[active]) / (b["step"] - a["step"])
            return max(0.0, (self.max_steps - b["step"]) * per_step), b
        if p and p.get("micro_s"):
            return ((p["total"] - p["done"]) + (self.max_steps - p["step"]) * p["total"]) * p["micro_s"], p
        return None, None

    def elapsed_at(self, now: float | None) -> float | None:
        """elapsed_s run on to the wall-clock time `now` while the run's clock runs: a live view ticks
        between events (a heavy step sends one every few seconds). None: as the events alone tell it."""
        elapsed = self.elapsed_s
        if elapsed is None or now is None or self.clock_t is None or self.last_t is None:
            return elapsed
        return elapsed + max(0.0, now - self.last_t)

    def eta_at(self, now: float | None) -> float | None:
        """eta_s counted down from the event it was reckoned at to the wall-clock time `now`."""
        eta, at = self._eta()
        if eta is None or now is None or not isinstance(at.get("t"), (int, float)):
            return eta
        return max(0.0, eta - max(0.0, now - at["t"]))

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
        return f"~{seconds:.0f} s" if seconds < 90 else f"~{units.duration(seconds)}"

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
    def outcome(self) -> str:
        """How the run stands by its events alone: empty, completed, stopped, pruned, error, or crashed
        (started, with no run_finished yet: a reader that can see a live trainer calls it running)."""
        if not self.events:
            return "empty"
        return OUTCOMES.get(self.finished["reason"], "error") if self.finished else "crashed"

    @property
    def badge(self) -> str:
        """The status as the header shows it: a command waiting for its answer, how a run ended."""
        if self.requested:
            return f"{self.requested} requested"
        if self.status == "finished" and self.finished:
            reason = self.finished["reason"]  # how it ended, by the one table; an error's badge says finished
            return OUTCOMES[reason] if reason in OUTCOMES and reason != "error" else "finished"
        return self.status


def describe(event: dict) -> tuple[str, str] | None:
    """One log line (text, Rich style) for an event worth a line; None for the rest (steps are plotted)."""
    kind = event["event"]
    if kind == "log":
        return event["message"], ""
    if kind == "run_started":
        return (
            f"run started: {units.count(event['params'])} params on {event.get('device_name') or event['device']}"
            f" ({event['dtype']}, compile {'on' if event['compile'] else 'off'}), "
            f"{event['tokens_per_step']:,} tokens/step" + (f", {event['optimizer']}" if event.get("optimizer") else "")
        ), ""
    if kind == "status":
        return f"status: {event['state']}", "dim"
    if kind == "eval":
        task = "".join(f", {k} {units.number(v)}" for k, v in (event.get("metrics") or {}).items())
        return f"eval at step {event['step']}: val loss {units.number(event['val_loss'])}{task}", ""
    if kind == "checkpoint":
        return f"checkpoint at step {event['step']}: {Path(event['path']).name}", "green"
    if kind == "error" and event.get("kind") != "prompt":
        hint = f" Hint: {event['hint']}" if event.get("hint") else ""
        return f"error ({event['kind']}): {event['message']}{hint}", "bold red"
    if kind == "run_finished":
        return f"run finished ({event['reason']}) at step {event['step']}", "bold"
    return None
