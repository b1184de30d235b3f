"""The picker's way into sweeps: a key given several values launches a sweep; `w` shows the sweeps."""

from contextlib import asynccontextmanager

import pytest
from screen_text import until, visible_text

from workbench.tui.app import GPTBenchApp
from workbench.tui.screens import picker as picker_module
from workbench.tui.screens.picker import PickerScreen
from workbench.tui.screens.sweeps import SweepsScreen


@pytest.fixture(autouse=True)
def cpu_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(picker_module, "guess_device_kind", lambda: "cpu")
    monkeypatch.setenv("GPTBENCH_RUNS", str(tmp_path / "runs"))


@asynccontextmanager
async def picker_app():
    """The app on its picker; what it is asked to launch is recorded (the sweep itself is the live tests')."""
    app = GPTBenchApp()
    sweeps: list[tuple] = []
    app.launch_sweep = lambda preset, grid, sets: sweeps.append((preset, grid, sets))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(
            pilot, lambda: isinstance(app.screen, PickerScreen) and app.screen.current == "addition", "the presets"
        )
        yield pilot, app.screen, sweeps


async def edit(pilot, key: str, text: str) -> None:
    table = pilot.app.screen.query_one("#config-table")
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    await pilot.press("enter", "ctrl+u", *text, "enter")


async def test_several_values_are_checked_one_by_one_and_launch_a_sweep():
    async with picker_app() as (pilot, picker, sweeps):
        await edit(pilot, "train.max_steps", "300")
        await until(pilot, lambda: "train.max_steps" in picker.overrides, "a plain edit")
        await edit(pilot, "train.lr", "3e-4,fast")
        await until(pilot, lambda: "got 'fast'" in visible_text(pilot.app), "the refused value named")
        await pilot.press("ctrl+u", *"3e-4,1e-3", "enter")
        await until(pilot, lambda: picker.overrides.get("train.lr") == "3e-4,1e-3", "the edit kept")
        assert "3e-4,1e-3" in visible_text(pilot.app)  # the sweep's values, as typed
        await pilot.press("l")
        assert sweeps == [("addition", ["train.lr=3e-4,1e-3"], ["train.max_steps=300"])]


async def test_w_shows_the_sweeps_and_says_how_to_start_one():
    async with picker_app() as (pilot, picker, _):
        await pilot.press("w")
        await until(pilot, lambda: isinstance(pilot.app.screen, SweepsScreen), "the sweeps view")
        await until(pilot, lambda: "no sweeps yet" in visible_text(pilot.app), "the empty view's hint")
