"""`gptbench runs [DIR]`: a table of the runs under a directory.

A run whose events.jsonl holds damaged lines is listed from the lines that are
fine, with one note under the table.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.cells import cell_len
from rich.console import Console
from rich import box
from rich.markup import escape
from rich.table import Table

from ..config import ConfigError
from ..runs import damage_note, runs_root
from ..runs import list_runs as find_runs


def list_runs(root: Path | None) -> None:
    if root is not None and not (root.is_dir() and os.access(root, os.R_OK | os.X_OK)):
        what = "is not a directory we can read" if root.exists() else "does not exist"
        raise ConfigError(f"{root} {what}.", "pass the directory that holds your runs (default ./runs, or $GPTBENCH_RUNS).")
    root = root or runs_root()
    summaries = find_runs(root)
    console = Console()
    if not summaries:
        console.print(f"No runs under {root}. Start one with: gptbench run addition --headless")
        return
    columns = ("run", "preset", "status", "steps", "best val", "task metric", "started")
    rows = [
        (s.path.name, s.preset, s.status, f"{s.step}/{s.max_steps}",
         f"{s.best_val_loss:.4f}" if s.best_val_loss is not None else "-", s.metric_text, s.started_text)
        for s in summaries
    ]
    # Every column keeps its width but the run's name, which folds into what is
    # left (Rich, left to choose, squeezes a folding column away on 80 columns).
    widths = [max(cell_len(c) for c in [head, *(row[i] for row in rows)]) for i, head in enumerate(columns)]
    run_width = min(widths[0], max(14, console.width - sum(widths[1:]) - 3 * len(columns) - 1))  # 3: padding, rule
    table = Table(title=f"runs in {escape(str(root))}", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("run", width=run_width, overflow="fold")
    for column in columns[1:]:
        table.add_column(column, justify="right" if column in ("steps", "best val") else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    notes = Console(stderr=True, highlight=False)
    for s in summaries:
        if s.damaged_lines:
            notes.print(f"[yellow]note:[/] {escape(damage_note(s.path, s.damaged_lines))}")
