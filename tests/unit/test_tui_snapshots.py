"""Snapshots of every screen, fed from recorded run directories (tests/fixtures/runs).

Everything on screen is derived from event fields and timestamps, so a
recorded events.jsonl always renders the same frame. Update after an intended
change with `pytest tests/unit/test_tui_snapshots.py --snapshot-update` and look at
the SVGs.
"""

import json
import shutil
import time
from pathlib import Path

import pytest
from screen_text import until

from workbench.tui.app import GPTBenchApp
from workbench.tui.screens import picker as picker_module
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.quit import QuitScreen
from workbench.tui.screens.run import RunScreen
from workbench.tui.screens.runs import RunsScreen
from workbench.tui.widgets.metric_plot import MetricPlot
from workbench.tui.widgets.runs_table import RunsTable

FIXTURES = Path(__file__).parents[1] / "fixtures" / "runs"


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """The recorded runs as ./runs, so the paths on screen are the same everywhere."""
    shutil.copytree(FIXTURES, tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPTBENCH_RUNS", "runs")
    monkeypatch.setenv("TZ", "UTC")  # the runs table shows local start times
    time.tzset()
    monkeypatch.setattr(
        picker_module, "guess_device_kind", lambda: "cpu"
    )  # the picker's estimate: not this machine's device
    monkeypatch.delenv("NO_COLOR", raising=False)
    yield Path("runs")
    monkeypatch.undo()
    time.tzset()


async def run_loaded(pilot):
    """Wait until the run screen has read its whole history, then draw it."""
    screen = pilot.app.screen
    assert isinstance(screen, RunScreen)
    await until(pilot, lambda: screen.state.finished or screen.state.crash)
    screen.redraw()
    await pilot.pause(0.1)


def test_picker(runs, snap_compare):
    async def presets_listed(pilot):
        await until(pilot, lambda: pilot.app.screen.current == "addition")

    assert snap_compare(GPTBenchApp(), run_before=presets_listed)


def test_picker_rejects_a_bad_value_with_the_cli_message(runs, snap_compare):
    async def bad_edit(pilot):
        await until(pilot, lambda: pilot.app.screen.current == "addition")
        table = pilot.app.screen.query_one("#config-table")
        table.focus()
        table.move_cursor(row=table.get_row_index("train.lr"))
        await pilot.press("enter", "ctrl+u", *"fast", "enter")

    assert snap_compare(GPTBenchApp(), run_before=bad_edit)


def test_dashboard_of_a_finished_run(runs, snap_compare):
    assert snap_compare(GPTBenchApp(attach=runs / "addition-completed"), run_before=run_loaded)


def test_dashboard_of_a_finished_run_large(runs, snap_compare):
    assert snap_compare(GPTBenchApp(attach=runs / "addition-completed"), run_before=run_loaded, terminal_size=(200, 50))


def test_dashboard_without_colour(runs, snap_compare, monkeypatch):
    """NO_COLOR: every curve in the foreground colour (a dim grey from a dark colour would all but vanish)."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(GPTBenchApp(attach=runs / "addition-completed"), run_before=run_loaded)


def test_dashboard_of_a_crashed_run(runs, snap_compare):
    assert snap_compare(GPTBenchApp(attach=runs / "addition-crashed"), run_before=run_loaded)


def test_sampling_console(runs, snap_compare):
    async def ask(pilot):
        await run_loaded(pilot)
        await pilot.press("t", *"23+58", "enter")  # the recorded run kept no checkpoint: a clear refusal
        await pilot.pause(0.1)

    assert snap_compare(GPTBenchApp(attach=runs / "addition-completed"), run_before=ask)


def test_runs_table(runs, snap_compare):
    async def listed(pilot):
        await until(pilot, lambda: pilot.app.screen.current == "addition")
        await pilot.press("r")
        await until(
            pilot,
            lambda: (
                isinstance(pilot.app.screen, RunsScreen)
                and any(t.row_count == 3 for t in pilot.app.screen.query(RunsTable))
            ),
        )

    assert snap_compare(GPTBenchApp(), run_before=listed)


async def compared(pilot):
    app = pilot.app
    app.compare_runs([Path("runs") / "addition-completed", Path("runs") / "addition-lr1e-3"])
    await until(
        pilot, lambda: isinstance(app.screen, CompareScreen) and any(p.curves for p in app.screen.query(MetricPlot))
    )
    await pilot.pause(0.1)


def test_compare_runs(runs, snap_compare):
    """Coloured legend and config diff (train.lr), the train loss overlaid."""
    assert snap_compare(GPTBenchApp(), run_before=compared)


def test_compare_runs_without_colour(runs, snap_compare, monkeypatch):
    """NO_COLOR: each run keeps a marker of its own, in the curves, the legend and the diff."""
    monkeypatch.setenv("NO_COLOR", "1")

    async def val_loss(pilot):
        await compared(pilot)
        await pilot.press("n")
        await pilot.pause(0.1)

    assert snap_compare(GPTBenchApp(), run_before=val_loss)


def test_help_screen(runs, snap_compare):
    async def help_shown(pilot):
        await run_loaded(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause(0.1)

    assert snap_compare(GPTBenchApp(attach=runs / "addition-completed"), run_before=help_shown, terminal_size=(100, 40))


def test_system_pane(runs, snap_compare):
    """200x50: stats, plots, log and the system pane (from a recorded system event, a GPU in it)."""
    system = {
        "event": "system",
        "t": 1.0,
        "cpu_percent": 97,
        "cpu_count": 2,
        "ram_used_gb": 5.1,
        "ram_total_gb": 23.4,
        "rss_gb": 0.41,
        "gpus": [
            {
                "index": 0,
                "name": "NVIDIA H100 80GB HBM3",
                "util_percent": 87,
                "mem_used_gb": 40.2,
                "mem_total_gb": 79.6,
                "power_w": 512,
                "temp_c": 61,
            }
        ],
    }
    with open(runs / "addition-lr1e-3" / "events.jsonl", "a") as f:
        f.write(json.dumps(system) + "\n")

    async def system_shown(pilot):
        await run_loaded(pilot)
        await pilot.press("u")
        pilot.app.screen.redraw()
        await pilot.pause(0.1)

    assert snap_compare(GPTBenchApp(attach=runs / "addition-lr1e-3"), run_before=system_shown, terminal_size=(200, 50))


def test_run_config_tab(runs, snap_compare):
    async def config_shown(pilot):
        await run_loaded(pilot)
        await pilot.press("f")
        await until(pilot, lambda: pilot.app.screen.query_one("#run-config-table").row_count > 0)
        await pilot.pause(0.1)

    assert snap_compare(GPTBenchApp(attach=runs / "addition-lr1e-3"), run_before=config_shown)


def test_quit_dialog(runs, snap_compare):
    async def ask(pilot):
        pilot.app.push_screen(QuitScreen(["addition-20250101-120000"]))
        await pilot.pause(0.1)

    assert snap_compare(GPTBenchApp(), run_before=ask)
