"""The picker: launching on purpose, edits that are never dropped, errors that go when the value is fixed."""

import re
from contextlib import asynccontextmanager

import pytest
from screen_text import until, visible_text

from workbench.tui.app import GPTBenchApp
from workbench.tui.screens import picker as picker_module
from workbench.tui.screens.confirm_launch import ConfirmLaunchScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.picker import PickerScreen


@pytest.fixture(autouse=True)
def cpu_machine(tmp_path, monkeypatch):
    """The estimates depend on the device the picker guesses: make it this test's, not the machine's."""
    monkeypatch.setattr(picker_module, "guess_device_kind", lambda: "cpu")
    monkeypatch.setenv("GPTBENCH_RUNS", str(tmp_path / "runs"))


class Launches:
    """Records what the app was asked to launch (the launch itself is the live tests' business)."""

    def __init__(self, app: GPTBenchApp):
        self.calls: list[tuple[str, list[str]]] = []
        app.launch_run = lambda preset, overrides: self.calls.append((preset, overrides))


@asynccontextmanager
async def picker_app():
    """The app on its picker, presets listed, launches recorded: (pilot, picker, launches)."""
    app = GPTBenchApp()
    launches = Launches(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(
            pilot, lambda: isinstance(app.screen, PickerScreen) and app.screen.current == "addition", "the presets"
        )
        yield pilot, app.screen, launches


async def edit(pilot, key: str, *keys: str) -> None:
    table = pilot.app.screen.query_one("#config-table")
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    await pilot.press("enter", "ctrl+u", *keys)


async def test_enter_edits_and_only_l_launches():
    async with picker_app() as (pilot, picker, launches):
        await pilot.press("enter")  # on the preset list
        await pilot.pause(0.1)
        assert launches.calls == [] and picker.focused.id == "config-table"
        await pilot.press("l")
        assert launches.calls == [("addition", [])]


async def test_escape_goes_from_the_config_back_to_the_presets_and_help_says_so():
    async with picker_app() as (pilot, picker, _):
        await pilot.press("enter")
        await until(pilot, lambda: picker.focused.id == "config-table", "the config")
        await pilot.press("enter", "x")  # editing a key: escape cancels the edit first
        await until(pilot, lambda: picker.focused.id == "config-input", "the edit box")
        await pilot.press("escape")
        await until(pilot, lambda: picker.focused.id == "config-table", "the keys again")
        await pilot.press("escape")
        await until(pilot, lambda: picker.focused.id == "preset-list", "the preset list")
        assert picker.overrides == {}
        await pilot.press("enter", "question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "the help")
        assert re.search(r"esc\s+Presets\s+Back to the preset list", visible_text(pilot.app))


async def test_a_run_of_hours_asks_first_naming_the_estimate_and_the_device():
    async with picker_app() as (pilot, picker, launches):
        app = pilot.app
        await pilot.press("down")
        await until(pilot, lambda: picker.current == "gpt2-124m", "gpt2-124m")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ConfirmLaunchScreen), "the question")
        assert "gpt2-124m would train for ~" in visible_text(app) and " days on this machine's cpu" in visible_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is picker, "the picker again")
        assert launches.calls == []
        for keys in (("l", "enter"), ("l", "l", "escape")):  # enter cancels; l again does nothing
            await pilot.press(*keys)
            await until(pilot, lambda: app.screen is picker, "the picker again")
            assert launches.calls == []
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ConfirmLaunchScreen), "the question again")
        await pilot.press("y")  # the one key that launches
        await until(pilot, lambda: launches.calls == [("gpt2-124m", [])], "the launch")


async def test_edits_survive_moving_to_another_preset_and_leaving_the_box():
    async with picker_app() as (pilot, picker, _):
        await edit(pilot, "train.lr", *"0.01", "enter")
        await edit(pilot, "train.max_steps", *"300")
        picker.query_one("#preset-list").focus()  # leave the box without enter: the edit is applied, not dropped
        await until(pilot, lambda: picker.overrides.get("train.max_steps") == "300", "the edit applied on leaving")
        await pilot.press("down")
        await until(pilot, lambda: picker.current == "gpt2-124m", "another preset")
        assert picker.overrides == {}
        await pilot.press("up")
        await until(pilot, lambda: picker.current == "addition", "addition again")
        assert picker.overrides == {"train.lr": "0.01", "train.max_steps": "300"}


async def test_a_rejected_value_is_dropped_on_leaving_the_box_and_the_line_says_so():
    async with picker_app() as (pilot, picker, launches):
        app = pilot.app
        await edit(pilot, "train.max_steps", *"abc")
        await until(pilot, lambda: "train.max_steps must be" in visible_text(app), "the error")
        await pilot.press("tab")
        await until(pilot, lambda: "train.max_steps=abc not applied" in visible_text(app), "the edit dropped")
        table = picker.query_one("#config-table")
        assert not picker.query_one("#config-input").display
        assert str(table.get_row("train.max_steps")[1]) == "1000" and picker.overrides == {}
        await pilot.press("l")  # launches what the table shows
        assert launches.calls == [("addition", [])]


async def test_an_error_goes_as_soon_as_the_value_is_fixed():
    async with picker_app() as (pilot, picker, _):
        app = pilot.app
        await edit(pilot, "train.lr", *"fast", "enter")
        assert "train.lr must be a number, got 'fast'." in visible_text(app)
        await pilot.press("ctrl+u", *"0.02")  # no enter yet: checked as you type
        await pilot.pause(0.1)
        assert "must be a number" not in visible_text(app) and "train.lr = …" in visible_text(app)
        await pilot.press("backspace", "backspace", "backspace", "backspace", *"-1")
        await pilot.pause(0.1)
        assert "train.lr" in visible_text(app) and "Hint" in visible_text(app)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert "Hint" not in visible_text(app) and picker.overrides == {}


@pytest.mark.parametrize(
    "key, typed, hint",
    [
        ("model.n_head", "many", "Hint: model.n_head takes a whole number, at least 1."),
        ("model.n_head", "0", "Hint: model.n_head takes a whole number, at least 1."),
        ("train.beta1", "2", "Hint: train.beta1 takes a number, in [0, 1)."),
        ("train.grad_clip", "x", "Hint: train.grad_clip takes a number, at least 0."),
        ("train.dtype", "fp8", "Hint: train.dtype takes one of auto, float32, bfloat16, float16."),
    ],
)
async def test_a_hint_says_what_the_edited_key_takes_not_a_cli_line(key, typed, hint):
    async with picker_app() as (pilot, picker, _):
        await edit(pilot, key, *typed)
        shown = picker.query_one("#config-error")
        await until(pilot, lambda: "Hint" in str(shown.content), "the hint")
        text = str(shown.content)
        assert text.endswith(hint) and "--set" not in text
