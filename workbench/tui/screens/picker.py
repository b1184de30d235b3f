"""PickerScreen: choose a preset, adjust its config, launch it.

Every edit is validated on the spot, as you type, by resolving the whole
config exactly as `gptbench run PRESET --set KEY=VALUE` would, so the messages
are the CLI's. Edits are kept per preset while you look at the others. Only
`l` launches (enter edits), and a run estimated at over an hour on this
machine asks first.

A key given several values (`3e-4,1e-3`) makes the launch a sweep: `gptbench
sweep` over those values, run in the background, shown in the Sweeps view.
Each value is checked alone; the config shown is the first value's.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from ... import presets
from ...config import Config, ConfigError
from ...sweep.spec import split_edits
from ..config_values import allowed_values, flat_values
from ..estimate import guess_device_kind, rough_duration, train_seconds
from ..widgets.config_editor import ConfigEditor
from ..widgets.preset_details import PresetDetails
from .confirm_launch import ConfirmLaunchScreen
from .workbench_screen import WorkbenchScreen

# Runs estimated to take longer than this on this machine ask before they start.
ASK_BEFORE_S = 3600


@dataclass
class PresetsLoaded(Message):
    found: dict[str, presets.Preset]
    error: ConfigError | None


class PickerScreen(WorkbenchScreen):
    HELP_TITLE = "picker"
    BINDINGS = [
        Binding(
            "l",
            "launch",
            "Launch",
            tooltip="Start training the preset with your edits (asks first if it would take hours)",
            id="picker.launch",
        ),
        Binding("r", "show_runs", "Runs", tooltip="Past and running runs", id="picker.runs"),
        Binding(
            "w",
            "show_sweeps",
            "Sweeps",
            tooltip="Sweeps: their trials live, curves, the best setting",
            id="picker.sweeps",
        ),
    ]

    def __init__(self):
        super().__init__()
        self.device_kind = guess_device_kind()
        self.presets: dict[str, presets.Preset] = {}
        self.current: str | None = None
        self.edits: dict[str, dict[str, str]] = {}  # per preset: key -> value as typed

    @property
    def overrides(self) -> dict[str, str]:
        """The current preset's edits."""
        return self.edits.setdefault(self.current, {})

    def compose(self) -> ComposeResult:
        yield Static("gptbench · pick a preset · enter edits its config · l launches · ? keys", id="picker-title")
        with Horizontal(id="picker-body"):
            yield OptionList(id="preset-list")
            with Vertical(id="picker-right"):
                yield PresetDetails(id="preset-details")
                yield ConfigEditor(id="config-editor")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#preset-list").border_title = "presets"
        self.load_presets()

    @work(thread=True, name="reading the presets", exit_on_error=False)
    def load_presets(self) -> None:
        try:
            self.post_message(PresetsLoaded(found=presets.available(), error=None))
        except ConfigError as exc:  # a broken user preset file
            self.post_message(PresetsLoaded(found={}, error=exc))

    @on(PresetsLoaded)
    def _presets_loaded(self, message: PresetsLoaded) -> None:
        if message.error:
            self.query_one(PresetDetails).show_error("presets", message.error.message, message.error.hint)
            return
        self.presets = message.found
        picker = self.query_one(OptionList)
        picker.clear_options()
        picker.add_options(Option(name, id=name) for name in self.presets)
        picker.highlighted = 0
        picker.focus()

    @on(OptionList.OptionHighlighted, "#preset-list")
    def _preset_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_id != self.current:
            self.current = event.option_id
            self._show()

    @on(OptionList.OptionSelected, "#preset-list")
    def _preset_selected(self, event: OptionList.OptionSelected) -> None:
        """enter on a preset goes to its config (only l launches)."""
        self.query_one("#config-table").focus()

    @staticmethod
    def _override_list(overrides: dict[str, str]) -> list[str]:
        """The edits as --set keys; a key given several values (a sweep) counts with its first."""
        sets, grid = split_edits(overrides)
        return [*sets, *(g.split(",")[0] for g in grid)]

    def _resolve(self, overrides: dict[str, str]) -> Config:
        return presets.resolve(self.presets[self.current], self._override_list(overrides), self.device_kind)

    def _show(self) -> None:
        """Resolve the current preset with the accepted edits and show it all."""
        preset = self.presets[self.current]
        details = self.query_one(PresetDetails)
        try:
            summary = presets.summary(preset, self.device_kind, self._override_list(self.overrides))
        except ConfigError as exc:  # the preset file itself is invalid
            details.show_error(preset.name, exc.message, exc.hint)
            return
        cfg = summary["config"]
        details.show(
            preset.name,
            preset.description,
            dict(
                params=summary["params"],
                tokens_per_step=summary["tokens_per_step"],
                max_steps=summary["max_steps"],
                device=self._device(cfg),
                profile=summary["profile"],
                seconds=self._seconds(cfg, summary["params"]),
            ),
        )
        values = flat_values(cfg.to_dict())
        values.update(dict(g.split("=", 1) for g in split_edits(self.overrides)[1]))  # a sweep's values, as typed
        self.query_one(ConfigEditor).show_config(values, set(self.overrides))

    def _device(self, cfg: Config) -> str:
        return self.device_kind if cfg.train.device == "auto" else cfg.train.device

    def _seconds(self, cfg: Config, params: int) -> float:
        return train_seconds(cfg, params, self._device(cfg).split(":")[0])

    @on(ConfigEditor.EditSubmitted)
    def _edit(self, message: ConfigEditor.EditSubmitted) -> None:
        candidate = {**self.overrides, message.key: message.value}
        try:
            several = split_edits({message.key: message.value})[1]
            for value in message.value.split(",") if several else [message.value]:  # a sweep: each value alone
                self._resolve({**candidate, message.key: value.strip()})
        except ConfigError as exc:
            # The CLI's hints say what to type after --set, with an example value; here, what the key takes.
            hint = exc.hint if "--" not in exc.hint else f"{message.key} takes {allowed_values(message.key)}."
            if isinstance(message, ConfigEditor.EditLeft):  # never leave a rejected value looking applied
                self.query_one(ConfigEditor).drop_edit(exc.message)
            else:
                self.query_one(ConfigEditor).show_error(exc.message, hint)
            return
        if isinstance(message, ConfigEditor.EditChanged):
            self.query_one(ConfigEditor).show_valid()
            return
        self.edits[self.current] = candidate
        self._show()

    @on(ConfigEditor.Back)
    def _back_to_presets(self) -> None:
        self.query_one("#preset-list").focus()

    @on(ConfigEditor.KeyReset)
    def _reset(self, message: ConfigEditor.KeyReset) -> None:
        if self.overrides.pop(message.key, None) is not None:
            self._show()

    def action_launch(self) -> None:
        if self.current is None:
            return
        try:
            summary = presets.summary(self.presets[self.current], self.device_kind, self._override_list(self.overrides))
        except ConfigError as exc:
            self.query_one(ConfigEditor).show_error(exc.message, exc.hint)
            return
        preset, overrides = self.current, self._override_list(self.overrides)
        sets, grid = split_edits(self.overrides)
        if grid:
            try:
                self.app.launch_sweep(preset, grid, sets)
            except ConfigError as exc:
                self.query_one(ConfigEditor).show_error(exc.message, exc.hint)
            return
        seconds = self._seconds(summary["config"], summary["params"])
        if seconds <= ASK_BEFORE_S:
            self.app.launch_run(preset, overrides)
            return

        def chosen(launch: bool | None) -> None:
            if launch:
                self.app.launch_run(preset, overrides)

        device = self._device(summary["config"])
        self.app.push_screen(ConfirmLaunchScreen(preset, rough_duration(seconds), device), chosen)

    def action_show_runs(self) -> None:
        self.app.show_runs()

    def action_show_sweeps(self) -> None:
        self.app.show_sweeps()
