"""`gptbench runs [DIR] [--json]`: a table (or JSON) of the runs under a directory.

A run whose events.jsonl holds damaged lines is listed from the lines that are
fine, with one note on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..config import ConfigError
from ..runs import RunSummary, damage_note, runs_root
from ..runs import list_runs as find_runs

COLUMNS = ("run", "preset", "status", "steps", "best val", "task metric", "started")
# On a narrow terminal these give way, in this order, each down to its floor;
# the run's name (what `logs` and `attach` take) folds onto more lines, last.
GIVE_WAY = {"started": 5, "task metric": 8, "preset": 6, "run": 14}
TABLE_EDGES = 3  # per column: padding on both sides and the rule between columns


def as_dict(s: RunSummary) -> dict:
    return {
        "path": str(s.path), "name": s.name, "tags": s.tags, "notes": s.notes, "preset": s.preset, "profile": s.profile,
        "status": s.status, "step": s.step, "max_steps": s.max_steps, "best_val_loss": s.best_val_loss,
        "metrics": s.metrics, "started": s.started, "damaged_lines": s.damaged_lines,
    }


def list_runs(root: Path | None, as_json: bool = False) -> None:
    if root is not None and not (root.is_dir() and os.access(root, os.R_OK | os.X_OK)):
        what = "is not a directory we can read" if root.exists() else "does not exist"
        raise ConfigError(f"{root} {what}.", "pass the directory that holds your runs (default ./runs, or $GPTBENCH_RUNS).")
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
    rows = [
        (_run_cell(s), escape(s.preset), s.status, f"{s.step}/{s.max_steps}",
         f"{s.best_val_loss:.4f}" if s.best_val_loss is not None else "-", escape(s.metric_text), s.started_text)
        for s in summaries
    ]
    table = Table(title=f"runs in {escape(str(root))}", title_justify="left", box=box.SIMPLE_HEAD)
    for column, width in zip(COLUMNS, fit_widths(rows, console.width)):
        table.add_column(column, width=width, justify="right" if column in ("steps", "best val") else "left",
                         no_wrap=column != "run", overflow="fold" if column == "run" else "ellipsis")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def fit_widths(rows: list[tuple[str, ...]], available: int) -> list[int]:
    """Column widths that fit `available` cells (Rich, left to choose, can squeeze the run's name away)."""
    def width(markup: str) -> int:
        return max(cell_len(line) for line in Text.from_markup(markup).plain.split("\n"))

    widths = [max(width(cell) for cell in [head, *(row[i] for row in rows)]) for i, head in enumerate(COLUMNS)]
    excess = sum(widths) + TABLE_EDGES * len(COLUMNS) + 1 - available
    for column, floor in GIVE_WAY.items():
        i = COLUMNS.index(column)
        cut = max(0, min(excess, widths[i] - floor))
        widths[i] -= cut
        excess -= cut
    return widths


def _run_cell(s: RunSummary) -> str:
    """The run directory's name; under it, the user's --name, --tag and --notes when there are any."""
    labels = " ".join([f"[bold]{escape(s.name)}[/]" if s.name else "", *(f"#{escape(t)}" for t in s.tags)]).strip()
    notes = f"[dim]{escape(s.notes)}[/]" if s.notes else ""
    return "\n".join(part for part in (escape(s.path.name), labels, notes) if part)
