"""What a sweep is, checked before anything is created: keys, values, seeds, objective, pruner.

    --grid KEY=V1,V2,...   every combination of the grids' values (Optuna's GridSampler)
    --space KEY=DIST       sampled (TPE, or --sampler random), --trials N settings:
                           log:LOW:HIGH (log-uniform), uniform:LOW:HIGH, int:LOW:HIGH, choice:A,B,C
    --seeds K              each setting K times, train.seed = 0..K-1
    --set KEY=VALUE        what every trial shares

A value is checked by the config itself: each grid setting is resolved exactly
as `gptbench run PRESET --set ...` would resolve it (a space by its ends and
choices), so the messages are the CLI's. Some keys cannot vary within one
sweep (CANNOT_VARY): they change what the loss measures, or they are the
sweep's own business (seeds, threads, devices).

Plain Python: no torch, no Optuna.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import presets
from ..config import Config, ConfigError, all_keys, parse_override, unknown_key_error
from ..runs import slug
from .objective import Objective

SPEC_FILE = "sweep.json"  # in the sweep directory: what the sweep is, so a re-run can check it is the same
SETTINGS_CHECKED = 1000  # grids up to this many settings are resolved setting by setting; larger ones value by value
SAMPLERS = ("tpe", "random")
PRUNERS = ("none", "median", "halving")
DISTRIBUTIONS = ("log", "uniform", "int", "choice")

# Keys a sweep may not vary, and why: the one place the rule is written (README quotes it).
CANNOT_VARY = {
    "data.": "the data decides what the loss measures, so its trials would not compare",
    "model.vocab_size": "the vocabulary is the data's",
    "model.init_from": "the starting weights bring their own architecture",
    "train.eval_tasks": "task metrics are what a trial is measured by",
    "train.seed": "--seeds K gives every setting the seeds 0..K-1",
    "train.threads": "--parallel shares the cores out among the trials",
    "train.device": "the sweep places each trial on a device (--parallel); --set train.device=cpu or cuda",
    "log.": "where metrics go is not a setting of the training",
    "profile": "a profile changes many keys at once; sweep the keys themselves",
}
# Of those, the ones every trial may still share through --set.
SHARED_ONLY = ("data.", "model.vocab_size", "model.init_from", "train.eval_tasks", "train.device", "log.", "profile")


def why_fixed(key: str) -> str | None:
    for prefix, why in CANNOT_VARY.items():
        if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
            return why
    return None


@dataclass
class Dist:
    """A --space distribution: log / uniform / int between low and high, or a choice of values."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: list[str] = field(default_factory=list)

    @property
    def ends(self) -> list[str]:
        """The values that bound it, checked by the config like grid values."""
        if self.kind == "choice":
            return self.choices
        return [str(int(v)) if self.kind == "int" else repr(v) for v in (self.low, self.high)]

    def text(self) -> str:
        return (
            f"choice:{','.join(self.choices)}"
            if self.kind == "choice"
            else f"{self.kind}:{self.ends[0]}:{self.ends[1]}"
        )


@dataclass
class SweepSpec:
    """What is tried, how often, and how it is scored. How it runs (--parallel, --storage) is not part of it:
    the same sweep may run on two machines with different --parallel."""

    preset: str
    grid: dict[str, list[str]] = field(default_factory=dict)
    space: dict[str, Dist] = field(default_factory=dict)
    trials: int = 0  # --space: settings to sample
    seeds: int = 1
    sets: list[str] = field(default_factory=list)
    objective: str = "val_loss"
    prune: str = "none"
    sampler: str = "grid"  # grid (--grid, or nothing to vary), tpe or random (--space)

    @property
    def keys(self) -> list[str]:
        return [*self.grid, *self.space]

    @property
    def settings(self) -> list[dict[str, str]]:
        """The grid's settings in Optuna's GridSampler order (keys sorted, values as given)."""
        keys = sorted(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    @property
    def settings_count(self) -> int:
        return self.trials if self.space else math.prod(len(v) for v in self.grid.values())

    @property
    def trial_count(self) -> int:
        return self.settings_count * self.seeds

    def overrides(self, params: dict[str, str], seed: int) -> list[str]:
        """The --set keys of one trial: shared ones, the setting's, its seed, and what the objective needs."""
        extra = Objective.parse(self.objective).trainer_sets(self.sets)
        return [*self.sets, *extra, *(f"{k}={v}" for k, v in params.items()), f"train.seed={seed}"]

    def to_json(self) -> dict:
        d = asdict(self)
        d["space"] = {k: v.text() for k, v in self.space.items()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> SweepSpec:
        d = {k: v for k, v in d.items() if k != "storage"}  # sweep.json also records where the study lives
        space = {k: parse_dist(k, v) for k, v in d.get("space", {}).items()}
        return cls(**{**d, "space": space})

    def command_args(self) -> list[str]:
        """This sweep as `gptbench sweep` arguments."""
        args = [self.preset]
        args += [a for k, v in self.grid.items() for a in ("--grid", f"{k}={','.join(v)}")]
        args += [a for k, v in self.space.items() for a in ("--space", f"{k}={v.text()}")]
        args += ["--trials", str(self.trials)] if self.space else []
        args += ["--sampler", self.sampler] if self.space else []
        args += [a for s in self.sets for a in ("--set", s)]
        return [*args, "--seeds", str(self.seeds), "--objective", self.objective, "--prune", self.prune]

    def describe(self) -> str:
        parts = [f"{k}={','.join(v)}" for k, v in self.grid.items()]
        parts += [f"{k}~{v.text()}" for k, v in self.space.items()]
        return " ".join(parts) or "the preset as set"


def read_sweep_file(sweep_dir: Path) -> dict:
    try:
        d = json.loads((Path(sweep_dir) / SPEC_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def read_spec(sweep_dir: Path) -> SweepSpec | None:
    try:
        return SweepSpec.from_json(read_sweep_file(sweep_dir))
    except (ValueError, TypeError, KeyError, ConfigError):
        return None


def write_spec(sweep_dir: Path, spec: SweepSpec, storage: str) -> None:
    path = Path(sweep_dir) / SPEC_FILE
    tmp = path.with_name(f".{SPEC_FILE}.{os.getpid()}")  # two workers starting together write it alike
    tmp.write_text(json.dumps({**spec.to_json(), "storage": storage}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def default_name(spec: SweepSpec) -> str:
    """The sweep's name when --sweep-dir is not given: the same command names the same sweep."""
    leaves = [k.rpartition(".")[2] for k in spec.keys] or ["seeds"]
    return slug("-".join([spec.preset, *leaves]))


# -- parsing ----------------------------------------------------------------------------------


def _key_of(text: str, flag: str, example: str) -> tuple[str, str]:
    try:
        key, value = parse_override(text)
    except ConfigError:
        raise ConfigError(
            f"{flag} {text!r} is not of the form KEY=VALUES.", f"write it like {flag} {example}"
        ) from None
    if key not in all_keys():
        raise unknown_key_error(key)
    return key, value


def _check_varies(key: str, flag: str) -> None:
    why = why_fixed(key)
    if why:
        hint = f"give it to every trial with --set {key}=VALUE" if key.startswith(SHARED_ONLY) else "leave it out"
        raise ConfigError(f"{key} cannot vary within one sweep: {why}.", f"{hint}; sweep another key with {flag}.")


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    grid: dict[str, list[str]] = {}
    for text in items:
        key, raw = _key_of(text, "--grid", "train.lr=3e-4,1e-3")
        _check_varies(key, "--grid")
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"--grid {key} has no values.", f"list them with commas: --grid {key}=A,B")
        if len(set(values)) < len(values):
            raise ConfigError(f"--grid {key} lists a value twice: {raw}.", "give each value once.")
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice.", f"list all its values in one: --grid {key}=A,B,C")
        grid[key] = values
    return grid


def parse_dist(key: str, text: str) -> Dist:
    kind, _, rest = text.partition(":")
    hint = f"e.g. --space {key}=log:1e-4:1e-2, uniform:0:0.2, int:2:8 or choice:a,b ({', '.join(DISTRIBUTIONS)})"
    if kind not in DISTRIBUTIONS or not rest:
        raise ConfigError(f"--space {key}={text} is not a distribution.", hint)
    if kind == "choice":
        choices = [c.strip() for c in rest.split(",") if c.strip()]
        if len(choices) < 2 or len(set(choices)) < len(choices):
            raise ConfigError(f"--space {key}={text} needs two or more different choices.", hint)
        return Dist(kind, choices=choices)
    ends = rest.split(":")
    try:
        low, high = (float(e) for e in ends)
    except ValueError:
        raise ConfigError(f"--space {key}={text} needs two numbers, LOW:HIGH.", hint) from None
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f"--space {key}={text}: int takes whole numbers.", hint)
    if not low < high:
        raise ConfigError(f"--space {key}={text}: LOW must be below HIGH.", hint)
    if kind == "log" and low <= 0:
        raise ConfigError(f"--space {key}={text}: a log-uniform range must be above 0.", hint)
    return Dist(kind, low, high)


def parse_space(items: list[str]) -> dict[str, Dist]:
    space: dict[str, Dist] = {}
    for text in items:
        key, raw = _key_of(text, "--space", "train.lr=log:1e-4:1e-2")
        _check_varies(key, "--space")
        if key in space:
            raise ConfigError(f"--space {key} is given twice.", "give each key one distribution.")
        space[key] = parse_dist(key, raw)
    return space


def split_edits(edits: dict[str, str]) -> tuple[list[str], list[str]]:
    """The app's config edits as (--set, --grid) arguments: a key given several values ("3e-4,1e-3")
    is a grid, unless the key takes a list (train.eval_tasks), where commas separate its elements."""
    defaults = Config().to_dict()
    sets, grid = [], []
    for key, value in edits.items():
        section, _, name = key.partition(".")
        default = defaults.get(section, {}).get(name) if name else defaults.get(key)
        several = "," in value and not isinstance(default, list)
        (grid if several else sets).append(f"{key}={value}")
    return sets, grid


def parse_sets(items: list[str]) -> list[str]:
    for text in items:
        key, _ = parse_override(text)
        if key in ("train.seed", "train.threads"):
            raise ConfigError(f"--set {key} is set by the sweep itself: {CANNOT_VARY[key]}.", "leave it out.")
    return list(items)


# -- the whole spec ---------------------------------------------------------------------------


def build_spec(
    preset: str,
    grid: list[str] = (),
    space: list[str] = (),
    trials: int | None = None,
    seeds: int = 1,
    sets: list[str] = (),
    objective: str = "val_loss",
    prune: str = "none",
    sampler: str | None = None,
) -> SweepSpec:
    """Parse and check a sweep; raises ConfigError (one sentence and a hint) at the first mistake."""
    preset_obj = presets.load(preset)
    sets = parse_sets(list(sets))
    grid_keys, space_keys = parse_grid(list(grid)), parse_space(list(space))
    if grid_keys and space_keys:
        raise ConfigError(
            "--grid and --space do not mix in one sweep.",
            "sample everything (a fixed list is --space KEY=choice:A,B), or grid everything.",
        )
    set_keys = {parse_override(s)[0] for s in sets}
    for key in (*grid_keys, *space_keys):
        if key in set_keys:
            raise ConfigError(f"{key} is both swept and --set.", f"drop --set {key}=..., or stop sweeping it.")
    if seeds < 1:
        raise ConfigError(
            f"--seeds must be at least 1, got {seeds}.", "--seeds 3 runs every setting with seeds 0, 1, 2."
        )
    if space_keys and not trials:
        raise ConfigError("--space samples settings, and needs --trials N.", "e.g. --trials 20")
    if trials is not None and not space_keys:
        raise ConfigError("--trials counts sampled settings, and needs --space.", "a --grid runs all its settings.")
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}.", "e.g. --trials 20")
    if prune not in PRUNERS:
        raise ConfigError(f"--prune must be one of {', '.join(PRUNERS)}, got {prune!r}.", "e.g. --prune median")
    if sampler is not None and sampler not in SAMPLERS:
        raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}.", "e.g. --sampler random")
    if sampler is not None and not space_keys:
        raise ConfigError("--sampler picks settings from a --space.", "a --grid runs all its settings in order.")
    Objective.parse(objective)  # raises on a bad one
    spec = SweepSpec(
        preset=preset,
        grid=grid_keys,
        space=space_keys,
        trials=trials or 0,
        seeds=seeds,
        sets=sets,
        objective=objective,
        prune=prune,
        sampler=(sampler or "tpe") if space_keys else "grid",
    )
    _check_values(preset_obj, spec)
    return spec


def _check_values(preset_obj: presets.Preset, spec: SweepSpec) -> None:
    """Resolve every grid setting (or every value alone, for a huge grid; a space by its ends), as
    `gptbench run` would: a value the key refuses is named with the key's own message."""

    def resolve(params: dict[str, str]) -> None:
        presets.resolve(preset_obj, spec.overrides(params, 0), "cpu")

    resolve({})  # the shared --set keys alone
    if spec.grid and spec.settings_count <= SETTINGS_CHECKED:
        for params in spec.settings:
            _named(resolve, params)
        return
    for key, values in spec.grid.items():
        for value in values:
            _named(resolve, {key: value})
    for key, dist in spec.space.items():
        for value in dist.ends:
            _named(resolve, {key: value})


def _named(resolve, params: dict[str, str]) -> None:
    """Resolve one setting; a refusal names the setting when it is a combination of keys."""
    try:
        resolve(params)
    except ConfigError as exc:
        if len(params) > 1:
            setting = " ".join(f"{k}={v}" for k, v in params.items())
            raise ConfigError(f"The setting {setting} is refused: {exc.message}", exc.hint) from None
        raise
