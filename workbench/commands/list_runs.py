"""`gptbench runs [DIR] [--json]`: a table (or JSON) of the runs under a directory."""

from __future__ import annotations

import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..runs import RunSummary
from ..runs import list_runs as find_runs
from ..runs import runs_root


def as_dict(s: RunSummary) -> dict:
    return {
        "path": str(s.path), "name": s.name, "tags": s.tags, "notes": s.notes, "preset": s.preset, "profile": s.profile,
        "status": s.status, "step": s.step, "max_steps": s.max_steps, "best_val_loss": s.best_val_loss,
        "metrics": s.metrics, "started": s.started,
    }


def list_runs(root: Path | None, as_json: bool = False) -> None:
    root = root or runs_root()
    summaries = find_runs(root)
    if as_json:
        print(json.dumps([as_dict(s) for s in summaries], indent=2))
        return
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
        table.add_row(_run_cell(s), s.preset, s.status, f"{s.step}/{s.max_steps}", best, s.metric_text, s.started_text)
    console.print(table)


def _run_cell(s: RunSummary) -> str:
    """The run directory's name; under it, the user's --name, --tag and --notes when there are any."""
    labels = " ".join([f"[bold]{escape(s.name)}[/]" if s.name else "", *(f"#{escape(t)}" for t in s.tags)]).strip()
    notes = f"[dim]{escape(s.notes)}[/]" if s.notes else ""
    return "\n".join(part for part in (escape(s.path.name), labels, notes) if part)
