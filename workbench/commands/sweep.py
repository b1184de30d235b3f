"""`gptbench sweep PRESET --grid KEY=V1,V2 ... [--headless]`: try many settings, prune, report.

Everything is checked before anything is created: the keys, every grid value
(resolved as `gptbench run` would), the objective, the slots; a sweep
directory that holds another sweep is refused. Then the sweep directory gets
its sweep.json, and the scheduler runs (sweep/scheduler.py).

--headless prints a live table on a terminal (Rich), one line per trial event
when piped, or the sweep's events as JSON lines with --json:

    sweep_started   sweep_dir, trials, settings, seeds, objective, parallel, slot, taken_over, storage
    trial_started   number, params, seed, run_dir, mode (fresh | resume | follow | done), slot
    trial_eval      number, step, val_loss, metrics
    trial_finished  number, params, seed, status, step, best_val_loss, objective, steps_to_target,
                    seconds_to_target, wall_s (its trainer's lifetime as the sweep saw it), note
    sweep_finished  wall_s, stopped, completed, pruned, failed, left

Without --headless the sweep runs in the background (its lines in
SWEEP_DIR/sweep.log) and the app opens on its Sweeps view.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from .. import units
from ..config import ConfigError
from ..runs import runs_root
from ..sweep import spec as specs
from ..sweep.report import rich_table
from ..sweep.resources import parse_parallel, plan_slots
from ..sweep.trials import read_sweep, setting_text

SWEEPS_DIR = "sweeps"  # under the runs root: runs/sweeps/NAME
LOG_FILE = "sweep.log"  # a sweep launched from the app (or without --headless) writes its JSON lines here


def sweeps_root() -> Path:
    return runs_root() / SWEEPS_DIR


def plan_sweep(
    preset: str,
    grid: list[str],
    space: list[str],
    trials: int | None,
    seeds: int,
    sets: list[str],
    objective: str,
    prune: str,
    sampler: str | None,
    parallel: str,
    sweep_dir: Path | None,
    storage: str | None,
):
    """(spec, sweep dir, storage URL, slots), all checked; nothing is written."""
    from ..sweep.study import require_optuna, storage_url

    require_optuna()
    spec = specs.build_spec(preset, grid, space, trials, seeds, sets, objective, prune, sampler)
    slots = plan_slots(spec, parse_parallel(parallel))
    sweep_dir = Path(sweep_dir) if sweep_dir else sweeps_root() / specs.default_name(spec)
    held = specs.read_sweep_file(sweep_dir)
    if held:
        other = specs.read_spec(sweep_dir)
        if other != spec:
            raise ConfigError(
                f"{sweep_dir} holds another sweep ({other.describe() if other else 'an unreadable sweep.json'}).",
                "rerun that sweep's own command to continue it, or give this one --sweep-dir DIR.",
            )
        storage = storage or held.get("storage")
    elif sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise ConfigError(f"{sweep_dir} is not empty and holds no sweep.", "give the sweep its own --sweep-dir.")
    return spec, sweep_dir, storage_url(storage, sweep_dir), slots


def sweep(
    preset: str,
    grid: list[str],
    space: list[str],
    trials: int | None,
    seeds: int,
    sets: list[str],
    objective: str,
    prune: str,
    sampler: str | None,
    parallel: str,
    sweep_dir: Path | None,
    storage: str | None,
    headless: bool,
    as_json: bool,
) -> int:
    spec, sweep_dir, url, slots = plan_sweep(
        preset, grid, space, trials, seeds, sets, objective, prune, sampler, parallel, sweep_dir, storage
    )
    if as_json and not headless:
        raise ConfigError("--json prints the sweep's events, and needs --headless.", "add --headless.")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    specs.write_spec(sweep_dir, spec, url)
    if not headless:
        start_in_background(spec, sweep_dir, parallel, url)
        from ..tui.app import run_app

        run_app(sweep=sweep_dir)
        return 0
    from ..sweep.scheduler import Scheduler

    console = Console(highlight=False)
    view = JsonLines() if as_json else LiveTable(console, sweep_dir) if console.is_terminal else PlainLines(console)
    with view:
        code = Scheduler(spec, sweep_dir, url, slots, view.on_event).run()
    if not as_json:
        console.print(rich_table(read_sweep(sweep_dir)))
        console.print(f"[dim]report: gptbench sweeps {escape(str(sweep_dir))}[/]")
    return code


def start_in_background(spec: specs.SweepSpec, sweep_dir: Path, parallel: str, url: str) -> subprocess.Popen:
    """The sweep as its own process (it outlives the app), its JSON lines in SWEEP_DIR/sweep.log."""
    argv = [sys.executable, "-m", "workbench", "sweep", *spec.command_args(), "--parallel", parallel]
    argv += ["--sweep-dir", str(sweep_dir), "--storage", url, "--headless", "--json"]
    with open(sweep_dir / LOG_FILE, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)


# -- views of the sweep's events ----------------------------------------------------------------


class JsonLines:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def on_event(self, e: dict) -> None:
        try:
            print(json.dumps(e), flush=True)
        except OSError:
            pass


def describe(e: dict) -> str | None:
    """One plain line per sweep event worth one."""
    kind = e["event"]
    if kind == "sweep_started":
        taken = f", taking over {e['taken_over']} unfinished" if e["taken_over"] else ""
        return (
            f"sweep {Path(e['sweep_dir']).name}: {e['trials']} trials ({e['settings']} settings x {e['seeds']} "
            f"seed{'s' if e['seeds'] != 1 else ''}), {e['parallel']} at a time ({e['slot']} each){taken}; "
            f"objective {e['objective']}"
        )
    if kind == "trial_started":
        how = {"fresh": "started", "resume": "resumed", "follow": "followed", "done": "found finished"}[e["mode"]]
        return f"trial {e['number']} {how}: {setting_text(e['params'])} seed {e['seed']} ({e['slot']})"
    if kind == "trial_eval":
        return f"trial {e['number']} step {e['step']}: val loss {units.number(e['val_loss'])}"
    if kind == "trial_finished":
        note = f" ({e['note']})" if e["note"] else ""
        return (
            f"trial {e['number']} {e['status']} at step {e['step']}: best val {units.number(e['best_val_loss'])}, "
            f"objective {units.number(e['objective'])}{note}"
        )
    if kind == "sweep_finished":
        counts = ", ".join(f"{e[k]} {k}" for k in ("completed", "pruned", "failed", "left") if e[k])
        how = "stopped" if e["stopped"] else "finished"
        return f"sweep {how} in {units.duration(e['wall_s'])}: {counts or 'nothing to do'}"
    return None


class PlainLines:
    def __init__(self, console: Console):
        self.console = console

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def on_event(self, e: dict) -> None:
        line = describe(e)
        if line:
            try:
                self.console.print(escape(line), soft_wrap=True)
            except OSError:
                pass


class LiveTable:
    """The trials as a table that updates in place (a terminal), redrawn at most a few times a second."""

    def __init__(self, console: Console, sweep_dir: Path):
        self.console, self.sweep_dir = console, sweep_dir
        self.rows: dict[int, dict] = {}
        self.header = ""
        self.live = Live(console=console, refresh_per_second=4, transient=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def on_event(self, e: dict) -> None:
        kind = e["event"]
        if kind in ("sweep_started", "sweep_finished"):
            self.header = describe(e) or ""
        elif kind == "trial_started":
            self.rows[e["number"]] = {**e, "status": "running", "step": 0, "val": None, "started": time.time()}
        elif kind == "trial_eval" and e["number"] in self.rows:
            self.rows[e["number"]].update(step=e["step"], val=e["val_loss"])
        elif kind == "trial_finished" and e["number"] in self.rows:
            self.rows[e["number"]].update(status=e["status"], step=e["step"], objective=e["objective"])
        self.live.update(self.render())

    def render(self) -> Group:
        table = Table(box=None, padding=(0, 2))
        for col in ("#", "setting", "seed", "status", "step", "val loss", "objective"):
            table.add_column(col, justify="right" if col in ("#", "step", "val loss", "objective") else "left")
        for number, r in sorted(self.rows.items())[-30:]:
            table.add_row(
                str(number),
                escape(setting_text(r["params"])),
                str(r["seed"]),
                r["status"],
                str(r["step"]),
                units.number(r["val"]),
                units.number(r.get("objective")),
            )
        return Group(escape(self.header), table)
