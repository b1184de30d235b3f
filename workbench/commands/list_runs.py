"""`gptbench runs [DIR]`: a table of the runs under a directory."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich import box
from rich.table import Table

from ..runs import list_runs as find_runs
from ..runs import runs_root


def list_runs(root: Path | None) -> None:
    root = root or runs_root()
    summaries = find_runs(root)
    console = Console()
    if not summaries:
        console.print(f"No runs under {root}. Start one with: gptbench run addition --headless")
        return
    table = Table(title=f"runs in {root}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("run", "preset", "status", "steps", "best val", "task metric", "started"):
        # everything keeps its width but the run's name, which folds on narrow terminals
        table.add_column(column, justify="right" if column in ("steps", "best val") else "left",
                         no_wrap=column != "run", overflow="fold" if column == "run" else "ellipsis",
                         min_width=14 if column == "run" else None)
    for s in summaries:
        best = f"{s.best_val_loss:.4f}" if s.best_val_loss is not None else "-"
        table.add_row(s.path.name, s.preset, s.status, f"{s.step}/{s.max_steps}", best, s.metric_text, s.started_text)
    console.print(table)
