"""PickerScreen: choose a preset, adjust its config, launch it.

Every edit is validated on the spot by resolving the whole config exactly as
`gptbench run PRESET --set KEY=VALUE` would, so the messages are the CLI's.
"""

from __future__ import annotations


from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from ... import presets
from ...config import Config, ConfigError, all_keys
from ..estimate import guess_device_kind, train_seconds
from ..widgets.config_editor import ConfigEditor
from ..widgets.preset_details import PresetDetails

def flat_values(cfg: Config) -> dict[str, str]:
    """{"train.lr": "0.003", ...} in the order `gptbench` documents the keys."""
    d = cfg.to_dict()
    values = {}
    for key in all_keys():
        section, _, name = key.partition(".")
        value = d[section][name] if name else d[section]
        values[key] = "auto" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return values


class PresetsLoaded(Message):
    def __init__(self, found: dict[str, presets.Preset], error: ConfigError | None):
        super().__init__()
        self.found, self.error = found, error


class PickerScreen(Screen):
    BINDINGS = [
        Binding("l", "launch", "Launch", tooltip="Start training the preset with your edits", id="picker.launch"),
        Binding("r", "show_runs", "Runs", tooltip="Past and running runs", id="picker.runs"),
    ]

    def __init__(self):
        super().__init__()
        self.device_kind = guess_device_kind()
        self.presets: dict[str, presets.Preset] = {}
        self.current: str | None = None
        self.overrides: dict[str, str] = {}  # per current preset: key -> value as typed

    def compose(self) -> ComposeResult:
        yield Static("gptbench · pick a preset, edit its config, press l to launch", id="picker-title")
        with Horizontal(id="picker-body"):
            yield OptionList(id="preset-list")
            with Vertical(id="picker-right"):
                yield PresetDetails(id="preset-details")
                yield ConfigEditor(id="config-editor")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#preset-list").border_title = "presets"
        self.load_presets()

    @work(thread=True)
    def load_presets(self) -> None:
        try:
            self.post_message(PresetsLoaded(presets.available(), None))
        except ConfigError as exc:  # a broken user preset file
            self.post_message(PresetsLoaded({}, exc))

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
            self.overrides = {}
            self._show()

    @on(OptionList.OptionSelected, "#preset-list")
    def _preset_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_launch()

    @staticmethod
    def _override_list(overrides: dict[str, str]) -> list[str]:
        return [f"{k}={v}" for k, v in overrides.items()]

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
                device=self.device_kind if cfg.train.device == "auto" else cfg.train.device,
                profile=summary["profile"],
                seconds=train_seconds(cfg, summary["params"], self.device_kind),
            ),
        )
        self.query_one(ConfigEditor).show_config(flat_values(cfg), set(self.overrides))

    @on(ConfigEditor.EditSubmitted)
    def _edit(self, message: ConfigEditor.EditSubmitted) -> None:
        candidate = {**self.overrides, message.key: message.value}
        try:
            self._resolve(candidate)
        except ConfigError as exc:
            self.query_one(ConfigEditor).show_error(exc.message, exc.hint)
            return
        self.overrides = candidate
        self._show()

    @on(ConfigEditor.KeyReset)
    def _reset(self, message: ConfigEditor.KeyReset) -> None:
        if self.overrides.pop(message.key, None) is not None:
            self._show()

    def action_launch(self) -> None:
        if self.current is None:
            return
        try:
            self._resolve(self.overrides)
        except ConfigError as exc:
            self.query_one(ConfigEditor).show_error(exc.message, exc.hint)
            return
        self.app.launch_run(self.current, [f"{k}={v}" for k, v in self.overrides.items()])

    def action_show_runs(self) -> None:
        self.app.show_runs()
