"""`gptbench sweeps [DIR] [--json | --format md | csv]`: a sweep's report, or the list of sweeps.

DIR: one row per setting, ranked (median and min–max over its seeds), then a
chart of the objective against each numeric parameter. `--format md` is the
table README's recipe table is made from; `--json` is an object with
`settings` and `trials`. Without DIR: the sweeps under runs/sweeps.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..config import ConfigError
from ..sweep.report import charts, csv_text, markdown, rich_table, to_json
from ..sweep.spec import SPEC_FILE
from ..sweep.trials import read_sweep, setting_text
from .sweep import sweeps_root

FORMATS = ("table", "md", "csv")


def sweeps(sweep_dir: Path | None, as_json: bool, fmt: str) -> int:
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}.", "e.g. --format md")
    if as_json and fmt != "table":
        raise ConfigError("--json and --format are two outputs; pick one.", "drop --format, or --json.")
    console = Console(highlight=False)
    if sweep_dir is None:
        return list_sweeps(console, as_json)
    if not (Path(sweep_dir) / SPEC_FILE).is_file():
        raise ConfigError(
            f"{sweep_dir} is not a sweep directory (no {SPEC_FILE}).",
            f"pass a directory made by `gptbench sweep`; `gptbench sweeps` lists those in {sweeps_root()}.",
        )
    view = read_sweep(sweep_dir)
    if as_json:
        print(json.dumps(to_json(view), indent=2))
    elif fmt == "md":
        print(markdown(view), end="")
    elif fmt == "csv":
        print(csv_text(view), end="")
    else:
        console.print(rich_table(view))
        for chart in charts(view, console.width, color=console.is_terminal and not console.no_color):
            console.print(Text.from_ansi(chart))
    return 0


def list_sweeps(console: Console, as_json: bool) -> int:
    root = sweeps_root()
    dirs = sorted(p for p in root.iterdir() if (p / SPEC_FILE).is_file()) if root.is_dir() else []
    views = [read_sweep(d) for d in dirs]
    if as_json:
        print(json.dumps([{"sweep": v.name, "path": str(v.path), **counts(v)} for v in views], indent=2))
        return 0
    if not views:
        console.print(f"no sweeps in {escape(str(root))} yet; `gptbench sweep PRESET --grid KEY=A,B` starts one")
        return 0
    table = Table(title=f"sweeps in {escape(str(root))}", title_justify="left")
    for col in ("sweep", "trials", "best setting"):
        table.add_column(col)
    for v in views:
        c = counts(v)
        done = f"{c['completed'] + c['pruned'] + c['failed']}/{len(v.trials)}"
        best = setting_text(v.best.params) if v.best else "-"
        table.add_row(escape(v.name), done, escape(best))
    console.print(table)
    return 0


def counts(view) -> dict:
    return {s: view.count(s) for s in ("completed", "pruned", "failed", "running", "queued")}
