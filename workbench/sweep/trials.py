"""The sweep directory, and the fold that reads a sweep back from it.

    SWEEP_DIR/
      sweep.json             what the sweep is (spec.py): a re-run checks it is the same sweep
      study.db               the Optuna study (unless --storage names another)
      takeover.lock          sweep processes on this host take over orphaned trials one at a time
      sweep.log              a sweep started from the app (or without --headless): its JSON lines
      trials/trial-0003/     one run directory per trial (Optuna's trial number), plus
        trial.json           the sweep, the setting, the seed, and the slot it ran in (threads, GPU share)
        labels.json          name "NAME #3", tags "sweep:NAME", "train.lr=1e-3", "seed=0" (`gptbench runs`)

`read_sweep(DIR)` folds every trial's events (objective.TrialFigures) and adds
the grid's trials that have not started (queued). The report, the app's Sweeps
view and the sweep's own live table all read a sweep through it. A trial's
status: running (its trainer is alive), completed, pruned, failed (an error, or
a trainer that died; a re-run resumes the latter), queued (not started, or
stopped by a Ctrl-C of the sweep: a re-run resumes it).

Plain Python: no torch, no Optuna.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..run_files import read_json
from ..runs import scan_events, trainer_running, write_labels
from .objective import Objective, TrialFigures, report_target
from .spec import SweepSpec, read_spec

TRIALS_DIR = "trials"
TRIAL_FILE = "trial.json"
STATUSES = ("completed", "pruned", "failed", "running", "queued")


def setting_text(params: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(the preset as set)"


def write_trial_files(run_dir: Path, sweep: str, number: int, params: dict, seed: int, slot: dict) -> None:
    """trial.json and the run's labels: who the run is within its sweep."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"sweep": sweep, "number": number, "params": params, "seed": seed, "slot": slot}
    (run_dir / TRIAL_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tags = [f"sweep:{sweep}", *(f"{k}={v}" for k, v in params.items()), f"seed={seed}"]
    write_labels(run_dir, f"{sweep} #{number}", tags, None)


@dataclass
class Trial:
    number: int | None
    params: dict[str, str]
    seed: int
    status: str = "queued"
    run_dir: Path | None = None
    figures: TrialFigures = field(default_factory=TrialFigures)
    objective: float | None = None
    slot: dict = field(default_factory=dict)
    unsampled: bool = False  # a --space trial whose setting Optuna has not picked yet

    @property
    def setting(self) -> str:
        return "(not sampled yet)" if self.unsampled else setting_text(self.params)

    def to_json(self) -> dict:
        s = self.figures.state
        return {
            "number": self.number,
            "params": self.params,
            "seed": self.seed,
            "status": self.status,
            "objective": self.objective,
            "best_val_loss": s.best_val_loss,
            "steps": s.step,
            "max_steps": s.max_steps,
            "steps_to_target": self.figures.steps_to_target,
            "seconds_to_target": self.figures.seconds_to_target,
            "seconds": s.elapsed_s,
            "metrics": s.task_scores,
            "slot": self.slot,
            "run_dir": str(self.run_dir) if self.run_dir else None,
        }


@dataclass
class Spread:
    """A figure over a setting's seeds: median, min, max, and how many seeds had it."""

    median: float | None = None
    low: float | None = None
    high: float | None = None
    n: int = 0

    @classmethod
    def of(cls, values: list[float | None]) -> Spread:
        xs = [v for v in values if v is not None]
        if not xs:
            return cls()
        return cls(statistics.median(xs), min(xs), max(xs), len(xs))

    def to_json(self) -> dict:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


@dataclass
class Setting:
    params: dict[str, str]
    trials: list[Trial]
    objective: Spread = field(default_factory=Spread)
    best_val: Spread = field(default_factory=Spread)
    steps_to_target: Spread = field(default_factory=Spread)
    seconds_to_target: Spread = field(default_factory=Spread)
    rank: int | None = None  # 1 = best; None until one of its trials completed

    @property
    def text(self) -> str:
        return setting_text(self.params)

    def count(self, status: str) -> int:
        return sum(t.status == status for t in self.trials)

    def to_json(self) -> dict:
        return {
            "params": self.params,
            "rank": self.rank,
            "seeds": [t.seed for t in self.trials],
            "statuses": {s: self.count(s) for s in STATUSES if self.count(s)},
            "objective": self.objective.to_json(),
            "best_val_loss": self.best_val.to_json(),
            "steps_to_target": self.steps_to_target.to_json(),
            "seconds_to_target": self.seconds_to_target.to_json(),
        }


@dataclass
class SweepView:
    path: Path
    spec: SweepSpec | None
    trials: list[Trial]
    settings: list[Setting]  # ranked: best first, then the ones with no completed trial
    target: float | None
    concurrent: int  # the most trials that ran at once (1: the clock is fair)

    @property
    def objective(self) -> Objective:
        return Objective.parse(self.spec.objective if self.spec else "val_loss")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def best(self) -> Setting | None:
        return self.settings[0] if self.settings and self.settings[0].rank == 1 else None

    @property
    def concurrency_note(self) -> str | None:
        """Said wherever a time figure is shown: concurrent trials slow each other down."""
        if self.concurrent <= 1:
            return None
        return (
            f"times were measured with up to {self.concurrent} trials at once on one machine "
            "(see each trial's slot): compare them with care"
        )

    def count(self, status: str) -> int:
        return sum(t.status == status for t in self.trials)


def read_trial(run_dir: Path, objective: Objective, target: float | None) -> Trial:
    record = read_json(run_dir / TRIAL_FILE)
    figures = TrialFigures(target=target)
    figures.state.run_dir = run_dir
    for event in scan_events(run_dir)[0]:
        figures.apply(event)
    trial = Trial(
        number=record.get("number"),
        params={str(k): str(v) for k, v in (record.get("params") or {}).items()},
        seed=int(record.get("seed", 0)),
        run_dir=run_dir,
        figures=figures,
        slot=record.get("slot") or {},
    )
    trial.status = trial_status(run_dir, figures)
    if trial.status in ("completed", "pruned"):
        trial.objective = objective.value(figures)
    return trial


def trial_status(run_dir: Path, figures: TrialFigures) -> str:
    state = figures.state
    if state.finished is None and trainer_running(run_dir, state):
        return "running"
    if state.finished is None:
        return "failed" if state.started else "queued"  # died, or never got going
    reason = state.finished["reason"]
    return {"completed": "completed", "pruned": "pruned", "stopped": "queued"}.get(reason, "failed")


def read_sweep(sweep_dir: str | Path) -> SweepView:
    """Every trial of the sweep in this directory, folded from its run directory, and its settings ranked."""
    sweep_dir = Path(sweep_dir)
    spec = read_spec(sweep_dir)
    objective = Objective.parse(spec.objective if spec else "val_loss")
    target = report_target(objective, spec.sets if spec else [])
    root = sweep_dir / TRIALS_DIR
    dirs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    trials = [read_trial(d, objective, target) for d in dirs]
    trials.sort(key=lambda t: (t.number is None, t.number))
    if spec and spec.grid is not None and spec.sampler == "grid":
        started = {(tuple(t.params.items()), t.seed) for t in trials}
        for params in spec.settings:
            ordered = {k: params[k] for k in spec.grid}
            for seed in range(spec.seeds):
                if (tuple(ordered.items()), seed) not in started:
                    trials.append(Trial(None, ordered, seed))
    elif spec:
        trials += [Trial(None, {}, 0, unsampled=True) for _ in range(max(0, spec.trial_count - len(trials)))]
    settings = _settings(trials, objective)
    concurrent = max((int(t.slot.get("concurrent", 1)) for t in trials if t.slot), default=1)
    gpu_shared = any(int(t.slot.get("gpu_share", 1)) > 1 for t in trials if t.slot)
    return SweepView(sweep_dir, spec, trials, settings, target, max(concurrent, 2 if gpu_shared else 1))


def _settings(trials: list[Trial], objective: Objective) -> list[Setting]:
    groups: dict[tuple, list[Trial]] = {}
    for t in trials:
        if not t.unsampled:
            groups.setdefault(tuple(t.params.items()), []).append(t)
    settings = []
    for key, members in groups.items():
        completed = [t for t in members if t.status == "completed"]
        settings.append(
            Setting(
                dict(key),
                members,
                objective=Spread.of([t.objective for t in completed]),
                best_val=Spread.of([t.figures.state.best_val_loss for t in members if t.status != "queued"]),
                steps_to_target=Spread.of([t.figures.steps_to_target for t in completed]),
                seconds_to_target=Spread.of([t.figures.seconds_to_target for t in completed]),
            )
        )
    sign = -1 if objective.maximize else 1
    ranked = sorted((s for s in settings if s.objective.median is not None), key=lambda s: sign * s.objective.median)
    for i, s in enumerate(ranked, 1):
        s.rank = i
    return ranked + [s for s in settings if s.objective.median is None]
