"""SweepsScreen: a sweep's trials as they run, and every trial's val curve on one plot.

The sweeps under runs/sweeps are listed on the left; the one picked shows its
trials (setting, seed, status, step, best val, objective, steps and seconds to
target) in a table that a worker re-reads every REFRESH_S, through the same
fold as `gptbench sweeps` (sweep/trials.py). The plot overlays every trial's
val loss, one colour per setting with all its seeds in that colour; the best
setting is starred in the table and the legend. `enter` opens a trial's run
view; `space` marks trials and `c` opens the marked ones in the compare view.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, OptionList, Static
from textual.widgets.option_list import Option

from ... import units
from ...sweep.spec import SPEC_FILE
from ...sweep.trials import SweepView, Trial, read_sweep
from ..curve_styles import run_style
from ..widgets.metric_plot import Curve, MetricPlot
from .workbench_screen import PlotScreen

REFRESH_S = 1.0
BEST = "★"


def sweeps_root() -> Path:
    from ...commands.sweep import sweeps_root as root

    return root()


class SweepRead(Message):
    def __init__(self, sweeps: list[Path], view: SweepView | None):
        super().__init__()
        self.sweeps, self.view = sweeps, view


class SweepsScreen(PlotScreen):
    HELP_TITLE = "sweeps"
    BINDINGS = [
        Binding(
            "enter", "open", "Open", tooltip="Open the trial's run: follow it live, or replay it", id="sweeps.open"
        ),
        Binding("space", "mark", "Mark", tooltip="Mark the trial for comparison", id="sweeps.mark"),
        Binding(
            "c", "compare", "Compare", tooltip="Overlay the marked trials in the compare view", id="sweeps.compare"
        ),
        Binding("escape", "back", "Back", tooltip="Back to the previous screen", id="sweeps.back"),
    ]

    def __init__(self, sweep_dir: Path | None = None):
        super().__init__()
        self.sweep_dir = Path(sweep_dir) if sweep_dir else None
        self.view: SweepView | None = None
        self.marked: set[Path] = set()
        self.listed: list[Path] = []

    def compose(self) -> ComposeResult:
        yield Static("sweeps · enter opens a trial · space marks · c compares", id="sweeps-title")
        with Horizontal(id="sweeps-body"):
            yield OptionList(id="sweep-list")
            with Vertical(id="sweeps-right"):
                yield DataTable(id="trials-table", cursor_type="row", zebra_stripes=True)
                yield MetricPlot("val loss", loggable=True, id="sweep-plot")
                yield Static(id="sweep-legend")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#sweep-list").border_title = "sweeps"
        table = self.query_one("#trials-table", DataTable)
        table.add_column("", key="mark", width=1)
        table.add_columns("#", "setting", "seed", "status", "step", "best val", "objective", "to target")
        plot = self.query_one(MetricPlot)
        plot.empty_text = "no evals yet"
        self.read()
        self.set_interval(REFRESH_S, self.read)
        self.set_interval(0.5, plot.refresh_if_stale)

    @work(thread=True, exclusive=True, group="read-sweep", name="reading the sweep", exit_on_error=False)
    def read(self) -> None:
        root = sweeps_root()
        sweeps = sorted((p for p in root.iterdir() if (p / SPEC_FILE).is_file()), reverse=True) if root.is_dir() else []
        if self.sweep_dir and self.sweep_dir not in sweeps:
            sweeps.insert(0, self.sweep_dir)
        chosen = self.sweep_dir or (sweeps[0] if sweeps else None)
        self.post_message(SweepRead(sweeps, read_sweep(chosen) if chosen else None))

    @on(SweepRead)
    def _read(self, message: SweepRead) -> None:
        if message.sweeps != self.listed:
            self.listed = message.sweeps
            picker = self.query_one(OptionList)
            picker.clear_options()
            picker.add_options(Option(p.name, id=str(p)) for p in message.sweeps)
            if self.sweep_dir in message.sweeps:
                picker.highlighted = message.sweeps.index(self.sweep_dir)
        view = message.view
        if view is None or (self.sweep_dir and view.path != self.sweep_dir):
            if view is None:
                self.query_one("#sweeps-title", Static).update(
                    "no sweeps yet: `gptbench sweep PRESET --grid KEY=A,B`, or give a key several values in the "
                    "picker's config (e.g. 3e-4,1e-3) and launch"
                )
            return
        self.sweep_dir, self.view = view.path, view
        self._show_title(view)
        self._show_table(view)
        self._show_plot(view)

    @on(OptionList.OptionHighlighted, "#sweep-list")
    def _picked(self, event: OptionList.OptionHighlighted) -> None:
        path = Path(str(event.option_id))
        if path != self.sweep_dir:
            self.sweep_dir = path
            self.marked.clear()
            self.read()

    # -- drawing -------------------------------------------------------------------------------

    def setting_index(self, view: SweepView) -> dict[str, int]:
        """Each setting's colour, in the order the sweep lists them (stable while ranks change)."""
        order = sorted(
            {t.setting for t in view.trials if not t.unsampled},
            key=lambda s: min(
                (t.number for t in view.trials if t.setting == s and t.number is not None), default=1 << 30
            ),
        )
        return {s: i for i, s in enumerate(order)}

    def _show_title(self, view: SweepView) -> None:
        statuses = ("running", "completed", "pruned", "failed", "queued")
        counts = " · ".join(f"{view.count(s)} {s}" for s in statuses if view.count(s)) or "no trials yet"
        best = f" · best {BEST} {view.best.text}" if view.best else ""
        self.query_one("#sweeps-title", Static).update(f"sweep {view.name} · {view.objective.label} · {counts}{best}")

    def _show_table(self, view: SweepView) -> None:
        table = self.query_one("#trials-table", DataTable)
        cursor = self.cursor_trial
        colours = self.setting_index(view)
        best = view.best.text if view.best else None
        table.clear()
        for i, t in enumerate(view.trials):
            key = str(t.run_dir) if t.run_dir else f"queued-{i}"
            style = run_style(colours.get(t.setting, 0))
            setting = Text(f"{BEST} " if t.setting == best else "  ") + Text(t.setting, style=style.rich_color)
            table.add_row(
                "✓" if t.run_dir in self.marked else "",
                units.DASH if t.number is None else str(t.number),
                setting,
                str(t.seed),
                Text(t.status, style=STATUS_STYLE.get(t.status, "")),
                f"{t.figures.state.step:,}" if t.run_dir else units.DASH,
                units.number(t.figures.state.best_val_loss),
                units.number(t.objective),
                self._to_target(t),
                key=key,
            )
        if cursor is not None and cursor.run_dir:
            try:
                table.move_cursor(row=table.get_row_index(str(cursor.run_dir)))
            except Exception:  # noqa: BLE001 - the row is gone
                pass

    def _to_target(self, t: Trial) -> str:
        f = t.figures
        if f.steps_to_target is None:
            return units.DASH
        return f"{f.steps_to_target:,} steps, {f.seconds_to_target:.1f}s"

    def _show_plot(self, view: SweepView) -> None:
        colours = self.setting_index(view)
        curves = [
            Curve(f"#{t.number}", t.figures.state.series["val_loss"], run_style(colours[t.setting]), smooth=False)
            for t in view.trials
            if t.run_dir and t.setting in colours
        ]
        plot = self.query_one(MetricPlot)
        plot.metric = "val loss of every trial, one colour per setting"
        plot.set_curves(curves)
        legend = Table.grid(padding=(0, 2))
        legend.add_column(no_wrap=True)
        legend.add_column(no_wrap=True)
        by_text = {s.text: s for s in view.settings}
        for text, i in colours.items():
            style = run_style(i)
            s = by_text.get(text)
            mark = f" {BEST} best" if view.best and text == view.best.text else ""
            median = f"median {units.number(s.objective.median)}" if s and s.objective.median is not None else ""
            legend.add_row(Text(f"{style.symbol} {text}{mark}", style=style.rich_color), median)
        note = view.concurrency_note
        if note and view.objective.is_time:
            legend.add_row(Text(note, style="dim"), "")
        self.query_one("#sweep-legend", Static).update(legend)

    # -- actions -------------------------------------------------------------------------------

    @property
    def cursor_trial(self) -> Trial | None:
        table = self.query_one("#trials-table", DataTable)
        if not self.view or not table.row_count:
            return None
        row = table.cursor_row
        return self.view.trials[row] if row < len(self.view.trials) else None

    def action_open(self) -> None:
        t = self.cursor_trial
        if t and t.run_dir:
            self.app.open_run(t.run_dir)
        elif t:
            self.notify("This trial has not started yet.", timeout=3)

    @on(DataTable.RowSelected, "#trials-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_mark(self) -> None:
        t = self.cursor_trial
        if t and t.run_dir:
            self.marked ^= {t.run_dir}
            table = self.query_one("#trials-table", DataTable)
            table.update_cell(str(t.run_dir), "mark", "✓" if t.run_dir in self.marked else "")

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("Mark two or more trials with space, then press c.", severity="warning")
            return
        self.app.compare_runs(sorted(self.marked))

    def action_back(self) -> None:
        self.app.pop_screen()


STATUS_STYLE = {"running": "bold green", "completed": "green", "pruned": "yellow", "failed": "red", "queued": "dim"}
