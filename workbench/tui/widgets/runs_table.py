"""RunsTable: past and running runs, newest first; marks pick runs to compare.

Like `gptbench runs`, it never cuts a run's name: where the terminal is too
narrow for every column, the same columns go, in the same order, and none is
cut off at the edge.
"""

from __future__ import annotations

from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from ... import units
from ...commands.list_runs import COLUMNS, DROPPED_FIRST
from ...runs import RunSummary

STATUS_STYLE = {
    "running": "bold green",
    "completed": "green",
    "stopped": "yellow",
    "pruned": "yellow",
    "error": "red",
    "crashed": "bold red",
    "empty": "dim",
    "unreadable": "bold red",
}


class RunsTable(DataTable):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.marked: set[Path] = set()
        self.summaries: dict[Path, RunSummary] = {}

    def show(self, summaries: list[RunSummary]) -> None:
        """Replace the rows, keeping the cursor on the same run."""
        self.summaries = {s.path: s for s in summaries}
        self.marked &= set(self.summaries)
        self._fill()

    def on_resize(self) -> None:
        self._fill()

    def _cells(self, s: RunSummary, metric: str | None) -> dict[str, Text]:
        """`metric`: the one task metric every run has, named in the header (None: each cell names its own)."""
        value = s.task_scores.get(metric) if metric else None
        return {
            "run": Text(s.path.name),
            "status": Text(s.status, style=self.status_style(s.status)),
            "steps": Text(f"{s.step:,}/{s.max_steps:,}" if s.max_steps else f"{s.step:,}"),
            "best val": Text(units.number(s.best_val_loss)),
            "metric": Text(units.number(value) if metric else s.metric_text),
            "preset": Text(s.preset),
            "started": Text(s.started_text),
        }

    def _fill(self) -> None:
        """Columns and rows anew, with the columns that fit the width (the widest cell of each, whole)."""
        current = self.cursor_path
        headlines = {next(iter(s.task_scores)) for s in self.summaries.values() if s.task_scores}
        metric = headlines.pop() if len(headlines) == 1 else None
        rows = [self._cells(s, metric) for s in self.summaries.values()]
        headers = dict(zip(COLUMNS, COLUMNS)) | {"metric": metric or "metric"}
        widths = {c: max([len(headers[c]), *(row[c].cell_len for row in rows)]) for c in COLUMNS}
        room = self.size.width - 3 - 1  # the mark column and its padding, a scrollbar
        columns = list(COLUMNS)
        for drop in (None, *DROPPED_FIRST):
            if drop:
                columns.remove(drop)
            if sum(widths[c] + 2 for c in columns) <= room:  # a cell is padded by one on each side
                break
        self.clear(columns=True)
        self.add_column("", key="mark", width=1)
        for column in columns:
            self.add_column(headers[column], key=column)
        for s, cells in zip(self.summaries.values(), rows):
            self.add_row("✓" if s.path in self.marked else "", *(cells[c] for c in columns), key=str(s.path))
        if current in self.summaries:
            self.move_cursor(row=self.get_row_index(str(current)))

    def status_style(self, status: str) -> Style:
        style = Style.parse(STATUS_STYLE.get(status, ""))
        # NO_COLOR turns colours into greys, and a dark red into a grey that vanishes on the
        # dark table: keep only the weight (bold, dim).
        return style.without_color if self.app.no_color else style

    @property
    def cursor_path(self) -> Path | None:
        if not self.row_count:
            return None
        return Path(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def toggle_mark(self) -> None:
        path = self.cursor_path
        if path is None:
            return
        self.marked ^= {path}
        self.update_cell(str(path), "mark", "✓" if path in self.marked else "")
