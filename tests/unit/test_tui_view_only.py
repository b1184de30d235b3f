"""`gptbench serve --view-only`'s app: controls refused with a message, watching untouched (recorded runs)."""

import shutil
from pathlib import Path

import pytest
from screen_text import until, visible_text

from workbench.run_files import LAST_CKPT
from workbench.tui.app import GPTBenchApp
from workbench.tui.screens.picker import PickerScreen
from workbench.tui.screens.run import RunScreen
from workbench.tui.trainer_link import FollowedRun

FIXTURES = Path(__file__).parents[1] / "fixtures" / "runs"


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "runs")
    monkeypatch.setenv("GPTBENCH_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


async def test_view_only_refuses_launch_and_resume_and_still_replays(runs):
    (runs / "addition-crashed" / LAST_CKPT).touch()  # a crashed run with a last.pt: R would resume it
    app = GPTBenchApp(attach=runs / "addition-crashed", view_only=True)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.resumable, "the crashed run")
        screen = app.screen
        await pilot.press("R")
        await until(pilot, lambda: "View only: resume run refused" in visible_text(app), "the refusal")
        assert isinstance(screen.link, FollowedRun)  # no trainer was started
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, PickerScreen) and app.screen.current, "the picker")
        await pilot.press("l")
        await until(pilot, lambda: "View only: launch refused" in visible_text(app), "the refusal")
        assert not app.run_screens and {p.name for p in runs.iterdir()} == {p.name for p in FIXTURES.iterdir()}
