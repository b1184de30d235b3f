"""`gptbench runs [DIR]`: a table of the runs under a directory."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from ..runs import RunSummary, runs_root
from ..runs import list_runs as find_runs

# Every column but the run's name can go when the terminal is narrow, the
# least needed first: the name already holds the preset and the start time.
COLUMNS = ("run", "status", "steps", "best val", "task metric", "preset", "started")
DROPPED_FIRST = ("preset", "started", "task metric", "best val")


def runs_table(root: Path, summaries: list[RunSummary], console: Console) -> Table:
    """The widest table that fits the console; the run's name is never cut or folded."""
    columns = list(COLUMNS)
    for drop in (None, *DROPPED_FIRST):
        if drop:
            columns.remove(drop)
        table = _table(root, summaries, columns)
        unlimited = console.options.update(width=10_000)  # measured as wide as it wants, not as the console allows
        if Measurement.get(console, unlimited, table).maximum <= console.width:
            break
    return table


def _table(root: Path, summaries: list[RunSummary], columns: list[str]) -> Table:
    table = Table(title=f"runs in {root}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column, justify="right" if column in ("steps", "best val") else "left", no_wrap=True)
    for s in summaries:
        cells = {
            "run": s.path.name, "preset": s.preset, "status": s.status, "steps": f"{s.step}/{s.max_steps}",
            "best val": f"{s.best_val_loss:.4f}" if s.best_val_loss is not None else "-",
            "task metric": s.metric_text, "started": s.started_text,
        }
        table.add_row(*(cells[c] for c in columns))
    return table


def list_runs(root: Path | None) -> None:
    root = root or runs_root()
    summaries = find_runs(root)
    console = Console()
    if not summaries:
        console.print(f"No runs under {root}. Start one with: gptbench run addition --headless")
        return
    console.print(runs_table(root, summaries, console))
