"""`gptbench runs [DIR] [--json]`: a table (or JSON) of the runs under a directory.

A run whose events.jsonl holds damaged lines is listed from the lines that are
fine, with one note on stderr. The run's directory name (what `logs` and
`attach` take) is never cut or folded: on a narrow terminal other columns go,
and a line under the table names them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from ..config import ConfigError
from ..runs import RunSummary, damage_note, runs_root
from ..runs import list_runs as find_runs

# Every column but the run's name can go when the terminal is narrow, the
# least needed first: the name already holds the preset and the start time.
COLUMNS = ("run", "status", "steps", "best val", "metric", "preset", "started")  # also the app's runs table
DROPPED_FIRST = ("preset", "started", "metric", "best val")


def runs_table(root: Path, summaries: list[RunSummary], console: Console) -> Table:
    """The widest table that fits the console; the run's directory name is never cut or folded."""
    columns = list(COLUMNS)
    unlimited = console.options.update(width=10_000)  # measured as wide as it wants, not as the console allows
    for drop in (None, *DROPPED_FIRST):
        if drop:
            columns.remove(drop)
        names_only = _table(root, summaries, columns, run_cell=lambda s: escape(s.path.name))
        if Measurement.get(console, unlimited, names_only).maximum <= console.width:
            break
    table = _table(root, summaries, columns, run_cell=_run_cell)
    left_out = [c for c in COLUMNS if c not in columns]
    if left_out:
        table.caption = f"{', '.join(left_out)}: left out at {console.width} columns (--json has every field)"
        table.caption_justify = "left"
    return table


def _table(root: Path, summaries: list[RunSummary], columns: list[str], run_cell) -> Table:
    # One space between columns, none at the edges: at 80 columns that is room for one more of them.
    table = Table(
        title=f"runs in {escape(str(root))}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        show_edge=False,
    )
    name_width = max(len(s.path.name) for s in summaries)
    for column in columns:
        if column == "run":  # as wide as the longest name; the user's labels and notes fold under it
            table.add_column(column, min_width=name_width, overflow="fold")
        else:
            table.add_column(column, justify="right" if column in ("steps", "best val") else "left", no_wrap=True)
    for s in summaries:
        cells = {
            "run": run_cell(s),
            "preset": escape(s.preset),
            "status": s.status,
            "steps": f"{s.step}/{s.max_steps}",
            "best val": f"{s.best_val_loss:.4f}" if s.best_val_loss is not None else "-",
            "metric": escape(s.metric_text),
            "started": s.started_text,
        }
        table.add_row(*(cells[c] for c in columns))
    return table


def _run_cell(s: RunSummary) -> str:
    """The run directory's name; under it, the user's --name, --tag and --notes when there are any."""
    labels = " ".join([f"[bold]{escape(s.name)}[/]" if s.name else "", *(f"#{escape(t)}" for t in s.tags)]).strip()
    notes = f"[dim]{escape(s.notes)}[/]" if s.notes else ""
    return "\n".join(part for part in (escape(s.path.name), labels, notes) if part)


def as_dict(s: RunSummary) -> dict:
    return {
        "path": str(s.path),
        "name": s.name,
        "tags": s.tags,
        "notes": s.notes,
        "preset": s.preset,
        "profile": s.profile,
        "status": s.status,
        "step": s.step,
        "max_steps": s.max_steps,
        "best_val_loss": s.best_val_loss,
        "metrics": s.task_scores,
        "started": s.started,
        "damaged_lines": s.damaged_lines,
    }


def list_runs(root: Path | None, as_json: bool = False) -> None:
    if root is not None and not (root.is_dir() and os.access(root, os.R_OK | os.X_OK)):
        what = "is not a directory we can read" if root.exists() else "does not exist"
        raise ConfigError(
            f"{root} {what}.", "pass the directory that holds your runs (default ./runs, or $GPTBENCH_RUNS)."
        )
    root = root or runs_root()
    summaries = find_runs(root)
    for s in summaries:
        if s.damaged_lines:
            print(damage_note(s.path, s.damaged_lines), file=sys.stderr)
    if as_json:
        print(json.dumps([as_dict(s) for s in summaries], indent=2))
        return
    console = Console()
    if not summaries:
        console.print(f"No runs under {escape(str(root))}. Start one with: gptbench run addition --headless")
        return
    console.print(runs_table(root, summaries, console))
