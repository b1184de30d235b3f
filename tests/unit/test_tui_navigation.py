"""Moving around the app with the keyboard, on recorded runs (no training)."""

import shutil
from pathlib import Path

import pytest
from screen_text import until, visible_text

from workbench.tui.app import GPTBenchApp
from workbench.tui.palette import ScreenActions
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.picker import PickerScreen
from workbench.tui.screens.run import RunScreen
from workbench.tui.screens.runs import RunsScreen
from workbench.tui.widgets.metric_plot import MetricPlot
from workbench.tui.widgets.runs_table import RunsTable

FIXTURES = Path(__file__).parents[1] / "fixtures" / "runs"


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "runs")
    monkeypatch.setenv("GPTBENCH_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


async def test_runs_table_opens_a_run_and_compares_two(runs):
    app = GPTBenchApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PickerScreen) and app.screen.current, "the picker")
        await pilot.press("r")
        await until(
            pilot,
            lambda: isinstance(app.screen, RunsScreen) and any(t.row_count == 3 for t in app.screen.query(RunsTable)),
            "the runs",
        )
        table = app.screen.query_one(RunsTable)
        table.move_cursor(row=table.get_row_index(str(runs / "addition-completed")))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.state.finished, "the replay")
        assert app.screen.state.step == 300 and app.screen.source == "replay from run dir"
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs again")
        await pilot.press("space", "up", "space", "c")  # the cursor is still on addition-completed, the last row
        await until(
            pilot,
            lambda: isinstance(app.screen, CompareScreen) and any(p.curves for p in app.screen.query(MetricPlot)),
            "the comparison",
        )
        assert len(app.screen.query_one("#compare-plot", MetricPlot).curves) == 2


async def test_the_command_palette_offers_the_screen_controls(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.state.finished, "the replay")
        screen = app.screen
        assert app.plot_options.smoothing
        await pilot.press("ctrl+p", *"smoothing")
        await pilot.pause(0.5)  # the palette searches asynchronously
        await pilot.press("enter")
        await until(pilot, lambda: not app.plot_options.smoothing, "smoothing off")
        # A finished run has nothing to pause: the palette does not offer it.
        commands = [b.action for b in ScreenActions(screen)._commands()]
        assert "toggle_plot('smoothing')" in commands and "pause" not in commands and "stop" not in commands
        await pilot.press("ctrl+p", *"quit")
        await pilot.pause(0.5)
        text = visible_text(app)
        assert "asks first if a run launched here still trains" in text and "as soon as possible" not in text
