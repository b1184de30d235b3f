"""RunsTable: past and running runs, newest first; marks pick runs to compare."""

from __future__ import annotations

from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from ... import units
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

    def on_mount(self) -> None:
        self.add_column("", key="mark", width=1)
        self.add_columns("run", "status", "step", "best val", "metric", "preset", "started")

    def show(self, summaries: list[RunSummary]) -> None:
        """Replace the rows, keeping the cursor on the same run."""
        current = self.cursor_path
        self.summaries = {s.path: s for s in summaries}
        self.marked &= set(self.summaries)
        self.clear()
        for s in summaries:
            self.add_row(
                "✓" if s.path in self.marked else "",
                s.path.name,
                Text(s.status, style=self.status_style(s.status)),
                f"{s.step:,}/{s.max_steps:,}" if s.max_steps else f"{s.step:,}",
                units.number(s.best_val_loss),
                s.metric_text,
                s.preset,
                s.started_text,
                key=str(s.path),
            )
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
