"""RunsScreen: the runs directory as a table; open, attach, compare."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from ...runs import RunSummary, is_run_dir, runs_root, summarize
from ..widgets.runs_table import RunsTable
from .workbench_screen import WorkbenchScreen

REFRESH_S = 2.0


def summaries(root: Path) -> list[RunSummary]:
    """Every run under `root`, newest first; one that cannot be read is listed as "unreadable",
    so a corrupt run directory costs its own row, never the table."""
    found = []
    for path in root.iterdir() if root.is_dir() else ():
        if not (path.is_dir() and is_run_dir(path)):
            continue
        try:
            found.append(summarize(path))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            found.append(RunSummary(path=path, status="unreadable"))
    return sorted(found, key=lambda s: s.started or 0, reverse=True)


@dataclass
class RunsListed(Message):
    summaries: list[RunSummary]


class RunsScreen(WorkbenchScreen):
    HELP_TITLE = "runs"
    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="Replay a finished run, or attach to a running one", id="runs.open"),
        Binding("space", "mark", "Mark", tooltip="Mark the run for comparison", id="runs.mark"),
        Binding(
            "c",
            "compare",
            "Compare",
            tooltip="Overlay the marked runs' curves and list their config differences",
            id="runs.compare",
        ),
        Binding("n", "new_run", "New run", tooltip="Back to the preset picker", id="runs.new"),
        Binding("escape", "back", "Back", show=False, id="runs.back"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(f"runs in {runs_root()} · enter opens · space marks · c compares", id="runs-title")
        yield RunsTable(id="runs-table")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_runs()
        self.set_interval(REFRESH_S, self.refresh_runs)

    @work(thread=True, exclusive=True, group="list-runs", name="listing the runs", exit_on_error=False)
    def refresh_runs(self) -> None:
        self.post_message(RunsListed(summaries(runs_root())))

    @on(RunsListed)
    def _listed(self, message: RunsListed) -> None:
        self.query_one(RunsTable).show(message.summaries)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_run(Path(str(event.row_key.value)))

    def action_open(self) -> None:
        path = self.query_one(RunsTable).cursor_path
        if path:
            self.app.open_run(path)

    def action_mark(self) -> None:
        self.query_one(RunsTable).toggle_mark()

    def action_compare(self) -> None:
        table = self.query_one(RunsTable)
        paths = sorted(table.marked) or ([table.cursor_path] if table.cursor_path else [])
        if len(paths) < 2:
            self.notify("Mark two or more runs with space, then press c.", severity="warning")
            return
        self.app.compare_runs(paths)

    def action_new_run(self) -> None:
        self.app.show_picker()

    def action_back(self) -> None:
        self.app.pop_screen()
