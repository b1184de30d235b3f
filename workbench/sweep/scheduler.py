"""The sweep's loop: fill the slots with trials, follow their events, prune, tell Optuna.

A trial is an ordinary run: the trainer `gptbench run --detach` would start,
in the trial's run directory, with the sweep's --set keys and the slot's
threads (or GPU). The trainer lives in a session of its own and outlives the
sweep (kill -9 of the sweep leaves it training). Its events are read from
RUN_DIR/events.jsonl, never from a pipe, so a trial started by this process,
one it took over from a sweep that died, and one resumed from its checkpoint
are followed alike.

- eval event: its val loss (or task metric) goes to trial.report(); when the
  pruner says so, the trial gets `stop` with reason `pruned` on its control
  FIFO, stops like a user stop (checkpoint kept) and finishes as `pruned`.
- run_finished: completed (the objective is told), pruned, or failed (error).
  stopped (a Ctrl-C of the sweep, or someone's stop): left to a re-run, which resumes it.
- the trainer gone without run_finished: the trial is marked `died` and left
  RUNNING; the next sweep on this host resumes it from last.pt.

Ctrl-C (or SIGTERM) stops every trial gracefully and exits 130; a second one kills them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..control import RunNotLive, send_command
from ..events import ProtocolError, decode
from ..launcher import start_in_background, trainer_command
from ..run_files import EVENTS_FILE, LAST_CKPT
from ..run_state import RunState
from ..runs import scan_events, trainer_running
from . import study as studies
from .objective import Objective, TrialFigures, report_target
from .resources import Slot
from .spec import SweepSpec
from .trials import write_trial_files

POLL_S = 0.1  # how often the trials' events are read: a pruned trial stops within about this much


@dataclass
class Running:
    """A trial this process follows: its Optuna trial, the slot it runs in, its events so far."""

    assigned: studies.Assigned
    slot: Slot
    run_dir: Path
    figures: TrialFigures
    process: object | None = None  # the trainer, when this process started it (else: taken over, still live)
    events_file: object | None = None
    partial: str = ""
    reported: set = field(default_factory=set)
    prune_sent: bool = False
    started_t: float = field(default_factory=time.time)

    @property
    def number(self) -> int:
        return self.assigned.trial.number


class Scheduler:
    def __init__(
        self,
        spec: SweepSpec,
        sweep_dir: Path,
        storage: str,
        slots: list[Slot],
        on_event: Callable[[dict], None],
    ):
        self.spec, self.sweep_dir, self.storage, self.slots = spec, Path(sweep_dir), storage, slots
        self.name = self.sweep_dir.name
        self.on_event = on_event
        self.objective = Objective.parse(spec.objective)
        self.target = report_target(self.objective, spec.sets)
        self.stops = 0  # Ctrl-C / SIGTERM received
        self.counts = {"completed": 0, "pruned": 0, "failed": 0, "left": 0}
        self.active: list[Running] = []

    def emit(self, event: str, **fields) -> None:
        self.on_event({"event": event, "t": round(time.time(), 3), **fields})

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        started = time.time()
        study = studies.open_study(self.spec, self.storage)
        me = studies.Worker.me()
        backlog = studies.take_over(study, me, self.sweep_dir)
        self.emit(
            "sweep_started",
            sweep_dir=str(self.sweep_dir),
            trials=self.spec.trial_count,
            settings=self.spec.settings_count,
            seeds=self.spec.seeds,
            objective=self.objective.label,
            parallel=len(self.slots),
            slot=self.slots[0].describe(),
            taken_over=len(backlog),
            storage=self.storage,
        )
        free = list(self.slots)
        handed_out = False
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                while free and not self.stops and not handed_out:
                    assigned = backlog.pop(0) if backlog else studies.next_trial(study, self.spec, me)
                    if assigned is None:
                        handed_out = True
                        break
                    self.active.append(self._start(assigned, free.pop(0)))
                if not self.active:
                    break
                for r in list(self.active):
                    if self._follow(study, r):
                        self.active.remove(r)
                        free.append(r.slot)
                time.sleep(POLL_S)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        self.emit("sweep_finished", wall_s=round(time.time() - started, 3), stopped=bool(self.stops), **self.counts)
        return 130 if self.stops else 0

    def _on_signal(self, signum: int, frame) -> None:
        """Ctrl-C / SIGTERM: every trial stops as a user stop would (checkpoint first); a second one kills."""
        self.stops += 1
        for r in self.active:
            try:
                if r.process is not None:
                    os.killpg(r.process.pid, signum if self.stops == 1 else signal.SIGKILL)
                elif self.stops == 1:  # taken over while it trained on: not our child
                    send_command(r.run_dir, "stop")
            except (ProcessLookupError, RunNotLive):
                pass  # it just ended

    # -- one trial --------------------------------------------------------------------------

    def _start(self, assigned: studies.Assigned, slot: Slot) -> Running | None:
        """Start (or resume, or just follow) the trial's trainer; None when its run had already finished."""
        run_dir = self.sweep_dir / assigned.run_dir
        state = RunState(run_dir)  # what the run dir holds already (a taken-over trial's run)
        for event in scan_events(run_dir)[0]:
            state.apply(event)
        figures = TrialFigures(target=self.target)  # _follow reads the events again, from the start
        figures.state.run_dir = run_dir
        running = Running(assigned, slot, run_dir, figures)
        live = state.events and trainer_running(run_dir, state)
        done = state.finished and state.finished["reason"] != "stopped"
        mode = "follow" if live else "done" if done else "resume" if (run_dir / LAST_CKPT).exists() else "fresh"
        if mode == "fresh" and run_dir.exists():  # died before its first checkpoint: nothing to keep
            shutil.rmtree(run_dir)
        if mode in ("fresh", "resume"):
            write_trial_files(run_dir, self.name, running.number, assigned.params, assigned.seed, slot.record())
            argv = trainer_command(
                None if mode == "resume" else self.spec.preset,
                run_dir,
                slot.sets()
                if mode == "resume"
                else [*self.spec.overrides(assigned.params, assigned.seed), *slot.sets()],
                resume=mode == "resume",
            )
            user = ["gptbench", "run", self.spec.preset, "--headless", "--run-dir", str(run_dir)]
            for o in self.spec.overrides(assigned.params, assigned.seed):
                user += ["--set", o]
            env = {**slot.env(), "GPTBENCH_ARGV": json.dumps(user)}
            running.process = start_in_background(argv, run_dir, env)
            running.process.stdout.close()  # the events are read from events.jsonl
        self.emit(
            "trial_started",
            number=running.number,
            params=assigned.params,
            seed=assigned.seed,
            run_dir=str(run_dir),
            mode=mode,
            slot=slot.describe(),
        )
        return running

    def _follow(self, study, r: Running) -> bool:
        """Read the trial's new events; True once it is over (told, or left to a re-run)."""
        exited = r.process is not None and r.process.poll() is not None
        for event in self._new_events(r):
            if not r.figures.apply(event):
                continue
            if event["event"] == "eval":
                self._on_eval(study, r, event)
            elif event["event"] == "run_finished":
                self._finish(study, r, event["reason"])
                return True
        state = r.figures.state
        gone = exited if r.process is not None else not trainer_running(r.run_dir, state)
        if gone and not self._new_events(r, peek=True):
            if state.finished is not None:  # finished before we followed it
                self._finish(study, r, state.finished["reason"])
                return True
            studies.mark_died(r.assigned.trial)
            self._close(r, "failed", note="the trainer died without finishing; a re-run resumes it")
            return True
        return False

    def _new_events(self, r: Running, peek: bool = False) -> list[dict]:
        """Complete new lines of events.jsonl (a half-written last line waits for the rest)."""
        if r.events_file is None:
            try:
                r.events_file = open(r.run_dir / EVENTS_FILE, encoding="utf-8", errors="replace")
            except OSError:
                return []
        if peek:
            here = r.events_file.tell()
            more = r.events_file.readline()
            r.events_file.seek(here)
            return [more] if more.endswith("\n") else []
        events = []
        for line in r.events_file:
            r.partial += line
            if not r.partial.endswith("\n"):
                break
            try:
                events.append(decode(r.partial))
            except ProtocolError:
                pass
            r.partial = ""
        return events

    def _on_eval(self, study, r: Running, event: dict) -> None:
        value, step = self.objective.intermediate(event), int(event["step"])
        self.emit(
            "trial_eval", number=r.number, step=step, val_loss=event.get("val_loss"), metrics=event.get("metrics")
        )
        if value is None or step in r.reported or r.prune_sent:
            return
        r.reported.add(step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a taken-over trial reports its old evals again: Optuna keeps the first
            r.assigned.trial.report(value, step)
        if self.spec.prune != "none" and r.assigned.trial.should_prune():
            try:
                send_command(r.run_dir, "stop", reason="pruned")
                r.prune_sent = True
            except RunNotLive:
                pass  # it is finishing anyway

    def _finish(self, study, r: Running, reason: str) -> None:
        status = {"completed": "completed", "pruned": "pruned"}.get(reason, "failed")
        if reason == "stopped":
            self._close(r, "queued", note="stopped; a re-run resumes it")
            return
        value = self.objective.value(r.figures) if status == "completed" else None
        studies.tell(study, r.assigned, status, value)
        self._close(r, status, objective=value)

    def _close(self, r: Running, status: str, objective: float | None = None, note: str = "") -> None:
        if r.process is not None:
            r.process.wait()
        if r.events_file is not None:
            r.events_file.close()
        self.counts[status if status in self.counts else "left"] += 1
        s = r.figures.state
        self.emit(
            "trial_finished",
            number=r.number,
            params=r.assigned.params,
            seed=r.assigned.seed,
            status=status,
            step=s.step,
            best_val_loss=s.best_val_loss,
            objective=objective,
            steps_to_target=r.figures.steps_to_target,
            seconds_to_target=r.figures.seconds_to_target,
            wall_s=round(time.time() - r.started_t, 3),
            note=note,
        )
