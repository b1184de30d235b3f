"""The Optuna study behind a sweep: storage, sampler, pruner, and which trial runs next.

Optuna is the search and the bookkeeping, so many machines can share one sweep
the way Optuna shares a study: every `gptbench sweep` process that opens the
same storage is one more worker.

- Storage: SQLite in the sweep directory by default; `--storage` takes any URL
  Optuna takes (postgresql://, mysql://, sqlite:///...) or `journal:PATH`
  (Optuna's journal file storage, for a shared disk).
- A grid is Optuna's GridSampler over the grid's keys and `train.seed`. It gives
  trial number N the N-th point of its (fixed, shuffled) order, so workers that
  ask at the same time never take the same point; a worker that asks after the
  grid is taken gets a surplus trial, which is closed at once and never run.
- A space is sampled (TPE or random) one setting at a time; its seeds 1..K-1
  are queued with Optuna's enqueue_trial, and any worker picks them up.
- Each trial's user attributes say what it is (`trial`: params, seed, run
  directory) and who runs it (`worker`: host, pid and start time of the sweep
  process; `died` once its trainer died), one write each. A trial still RUNNING whose
  sweep process is gone on this host is taken over by the next sweep on this
  host (its checkpoint lives here): that is how a re-run continues.

Imported only by the sweep process (`gptbench sweep`), never by the report or the app.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from .objective import Objective
from .spec import SweepSpec, default_name

try:
    import optuna
    from optuna.trial import TrialState
except ImportError:  # the `sweep` extra
    optuna = None

STUDY_FILE = "study.db"
LOCK_FILE = "takeover.lock"
SEED = "train.seed"  # the grid's seed dimension, named as the config key it sets


def require_optuna() -> None:
    if optuna is None:
        raise ConfigError("Sweeps need Optuna, which is not installed.", 'pip install "gptbench[sweep]"')


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """The storage as the user names it (and as sweep.json records it): a URL, journal:PATH, or the default."""
    return storage or f"sqlite:///{(Path(sweep_dir) / STUDY_FILE).resolve()}"


def open_storage(url: str):
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental in some Optuna versions
            return JournalStorage(JournalFileBackend(str(Path(url[len("journal:") :]).expanduser())))
    if url.startswith("sqlite:"):
        # Several sweep processes on one machine share the file: wait for its lock, never fail on it.
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
    return optuna.storages.RDBStorage(url)


class SweepGrid(optuna.samplers.GridSampler if optuna else object):
    """GridSampler, minus its `study.stop()` once the grid is taken: that call works only inside
    study.optimize(), and the scheduler stops asking for trials by itself."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def make_sampler(spec: SweepSpec):
    if spec.sampler == "grid":
        return SweepGrid({**spec.grid, SEED: list(range(spec.seeds))}, seed=0)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler()
    return optuna.samplers.TPESampler()


def make_pruner(spec: SweepSpec):
    """median: a trial stops when its best so far is worse than the median of the completed trials at
    the same step, once as many trials as one setting has seeds (at least 2) have completed;
    halving: Optuna's successive halving (asynchronous, rung by rung of evals)."""
    if spec.prune == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(2, spec.seeds), n_warmup_steps=0)
    if spec.prune == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def study_name(spec: SweepSpec) -> str:
    """The study's name in its storage: the same sweep has the same name on every machine, whatever
    its --sweep-dir there, and two sweeps that differ in anything never share one."""
    digest = hashlib.sha256(json.dumps(spec.to_json(), sort_keys=True).encode()).hexdigest()[:10]
    return f"{default_name(spec)}-{digest}"


def open_study(spec: SweepSpec, url: str):
    """Create the study, or join it: a study of the same name that holds another sweep is refused."""
    require_optuna()
    name = study_name(spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    for attempt in range(5):  # two workers creating one SQLite file at once may collide on its tables
        try:
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=make_sampler(spec),
                pruner=make_pruner(spec),
                direction=Objective.parse(spec.objective).direction,
                load_if_exists=True,
            )
            break
        except Exception as exc:  # noqa: BLE001 - sqlalchemy's OperationalError and kin: try again
            if attempt == 4:
                raise ConfigError(f"The study storage {url} cannot be opened: {exc}.", "check --storage.") from None
            time.sleep(0.5 + attempt)
    wanted = json.dumps(spec.to_json(), sort_keys=True)
    held = study.user_attrs.get("spec")
    if held is None:
        study.set_user_attr("spec", wanted)
    elif held != wanted:
        raise ConfigError(
            f"The storage {url} holds a study {name!r} of another sweep.",
            "use another --storage for this sweep, or rerun that sweep's own command.",
        )
    return study


# -- who runs a trial -----------------------------------------------------------------------


@dataclass(frozen=True)
class Worker:
    """This sweep process, as trial attributes name it."""

    host: str
    pid: int
    started: float  # the process's start time: a reused pid is another process

    @classmethod
    def me(cls) -> Worker:
        return cls(socket.gethostname(), os.getpid(), process_start(os.getpid()) or 0.0)

    def claim(self, trial) -> None:
        """One attribute (one write to the storage): this worker runs the trial now."""
        trial.set_user_attr("worker", {"host": self.host, "pid": self.pid, "started": self.started, "died": False})

    def owns_here(self, worker: dict) -> bool:
        return worker.get("host") == self.host


def process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def owner_alive(worker: dict) -> bool:
    pid = worker.get("pid")
    return isinstance(pid, int) and process_start(pid) == worker.get("started")


def mark_died(trial) -> None:
    """Its trainer died without finishing: any sweep on this host may take it over (and resume it)."""
    trial.set_user_attr("worker", {**trial.user_attrs.get("worker", {}), "died": True})


@dataclass
class Assigned:
    """A trial this worker runs: fresh, or taken over (then its run dir may hold a run already)."""

    trial: object  # optuna.Trial
    params: dict[str, str]
    seed: int
    run_dir: str  # relative to the sweep directory
    taken_over: bool = False


def trial_dir(number: int) -> str:
    return f"trials/trial-{number:04d}"


@contextlib.contextmanager
def takeover_lock(sweep_dir: Path):
    """Sweep processes on one host take over orphaned trials one at a time."""
    with open(Path(sweep_dir) / LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def take_over(study, me: Worker, sweep_dir: Path) -> list[Assigned]:
    """RUNNING trials of this host whose sweep process is gone, or whose trainer died: ours now."""
    taken = []
    with takeover_lock(sweep_dir):
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            what, worker = frozen.user_attrs.get("trial"), frozen.user_attrs.get("worker", {})
            if what is None or not me.owns_here(worker) or (owner_alive(worker) and not worker.get("died")):
                continue
            trial = optuna.trial.Trial(study, frozen._trial_id)
            me.claim(trial)
            taken.append(Assigned(trial, dict(what["params"]), int(what["seed"]), what["run_dir"], True))
    return taken


def next_trial(study, spec: SweepSpec, me: Worker) -> Assigned | None:
    """A new trial for this worker, or None when the sweep has handed out all of its trials."""
    if spec.sampler == "grid":
        if len(study.get_trials(deepcopy=False)) >= spec.trial_count:
            return None
        trial = study.ask()
        if trial.number >= spec.trial_count:  # another worker took the last point first: never run
            study.tell(trial, state=TrialState.FAIL)
            return None
        params = {k: trial.suggest_categorical(k, v) for k, v in spec.grid.items()}
        seed = trial.suggest_categorical(SEED, list(range(spec.seeds)))
    else:
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        sampled = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("trial", {}).get("seed") == 0]
        if not waiting and len(sampled) >= spec.trials:
            return None
        trial = study.ask()
        seed = int(trial.user_attrs.get("seed", 0))  # an enqueued seed carries its own
        params = {k: _suggest(trial, k, d) for k, d in spec.space.items()}
        if seed == 0:
            for s in range(1, spec.seeds):  # the setting's other seeds: any worker takes them
                study.enqueue_trial(dict(trial.params), user_attrs={"seed": s})
    run_dir = trial_dir(trial.number)
    trial.set_user_attr("trial", {"params": params, "seed": seed, "run_dir": run_dir})
    me.claim(trial)
    return Assigned(trial, params, seed, run_dir)


def _suggest(trial, key: str, dist) -> str:
    """A sampled value, as --set takes it."""
    if dist.kind == "choice":
        return str(trial.suggest_categorical(key, dist.choices))
    if dist.kind == "int":
        return str(trial.suggest_int(key, int(dist.low), int(dist.high)))
    # 4 significant digits: what a person reads and retypes; the setting's seeds all get the same text
    return f"{trial.suggest_float(key, dist.low, dist.high, log=dist.kind == 'log'):.4g}"


def tell(study, assigned: Assigned, status: str, value: float | None) -> None:
    """completed (with the objective; never reached: the worst value there is), pruned or failed."""
    if status == "completed":
        worst = float("-inf") if study.direction == optuna.study.StudyDirection.MAXIMIZE else float("inf")
        study.tell(assigned.trial, worst if value is None else value)
    elif status == "pruned":
        study.tell(assigned.trial, state=TrialState.PRUNED)
    else:
        study.tell(assigned.trial, state=TrialState.FAIL)
