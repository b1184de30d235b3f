"""ConfigEditor: every config key of the picked preset, editable in place.

The editor shows values and takes edits; it does not judge them. It posts
`EditChanged` as you type, `EditSubmitted` on enter and `EditLeft` when you
leave the box (a good edit is never dropped because the focus moved), and the
picker screen validates the whole config with the same `presets.resolve` the
CLI uses, then either accepts the edit (`show_config`) or hands the error back
(`show_error`) with the CLI's exact message and hint; a value that is fine
again clears it. A rejected value you leave is dropped (`drop_edit`), and the
line under the table says so: it never stays in the box looking applied.
Under the table, the selected key's help (config.py) says what it means.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from ...config import all_keys, key_help
from ..clamped_text import ClampedText


class ConfigEditor(Vertical):
    HELP_TITLE = "config (enter edits the selected key)"
    BINDINGS = [
        Binding("d", "reset_key", "Reset key", tooltip="Drop your edit of the selected key", id="config.reset"),
        Binding(
            "escape",
            "back",
            "Presets",
            tooltip="Back to the preset list (while editing: cancel the edit)",
            id="config.back",
        ),
    ]

    class Back(Message):
        """escape on the keys: the picker goes back to its preset list."""

    @dataclass
    class EditSubmitted(Message):
        key: str
        value: str

    class EditChanged(EditSubmitted):
        """The value in the box changed (not applied yet): check it."""

    class EditLeft(EditSubmitted):
        """The box lost the focus with this value: apply it if it is fine, else drop it."""

    @dataclass
    class KeyReset(Message):
        key: str

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.editing: str | None = None  # the key being edited
        self._original = ""  # its value when the edit began

    def compose(self) -> ComposeResult:
        table = DataTable(id="config-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("key", "value")
        yield table
        yield Input(id="config-input", compact=True)
        yield Static(id="config-error")

    def on_mount(self) -> None:
        self.border_title = "config: enter edits a key, d resets it"
        self.query_one("#config-input").display = False

    def show_config(self, values: dict[str, str], edited: set[str]) -> None:
        """Show resolved values; the keys you edited stand out. Any error is gone with the bad value."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for key, value in values.items():
            style = "bold yellow" if key in edited else ""
            table.add_row(Text(key, style=style), Text(value, style=style), key=key)
        table.move_cursor(row=min(row, table.row_count - 1))
        if self.editing:
            self._end_edit()
        self._show_help()

    def show_error(self, message: str, hint: str) -> None:
        self.query_one("#config-error", Static).update(
            ClampedText(Text.assemble((message, "bold red"), f" Hint: {hint}" if hint else ""))
        )

    def show_valid(self) -> None:
        """The value being typed is fine (as far as the whole config goes)."""
        if self.editing:
            self.query_one("#config-error", Static).update(self._editing_hint())

    def _editing_hint(self) -> Text:
        return Text(f"{self.editing} = …  (enter applies, escape cancels)", style="dim")

    def _show_help(self) -> None:
        """The selected key's help, in the line under the table (the edit's hint or error while editing)."""
        table = self.query_one(DataTable)
        if self.editing or not table.row_count:
            return
        key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        line = ClampedText(Text(f"{key}: {key_help(key)}", style="dim")) if key in all_keys() else ""
        self.query_one("#config-error", Static).update(line)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_help()

    @on(DataTable.RowSelected)
    def _begin_edit(self, event: DataTable.RowSelected) -> None:
        if not self.app.allows("config edit"):
            return
        key = str(event.row_key.value)
        self.editing = key
        box = self.query_one("#config-input", Input)
        box.value = str(event.data_table.get_row(event.row_key)[1])
        box.placeholder = key
        box.display = True
        box.focus()
        self._original = box.value
        self.query_one("#config-error", Static).update(self._editing_hint())

    @on(Input.Submitted, "#config-input")
    def _submit(self, event: Input.Submitted) -> None:
        if self.editing:
            self.post_message(self.EditSubmitted(self.editing, event.value.strip()))

    @on(Input.Changed, "#config-input")
    def _changed(self, event: Input.Changed) -> None:
        if self.editing:
            self.post_message(self.EditChanged(self.editing, event.value.strip()))

    @on(Input.Blurred, "#config-input")
    def _left(self, event: Input.Blurred) -> None:
        """Leaving the box (a click elsewhere, tab) applies what was typed, as enter would, if it is fine."""
        if not self.editing:
            return
        if event.value != self._original:
            self.post_message(self.EditLeft(self.editing, event.value.strip()))
        else:
            self._end_edit()

    def drop_edit(self, why: str) -> None:
        """The value left in the box was rejected: back to the value before, saying why."""
        if not self.editing:
            return
        key, value = self.editing, self.query_one("#config-input", Input).value.strip()
        self._end_edit()
        self.query_one("#config-error", Static).update(
            Text.assemble((f"{key}={value} not applied: ", "bold red"), why, ("  (enter edits it again)", "dim"))
        )

    def _end_edit(self) -> None:
        self.editing = None
        box = self.query_one("#config-input")
        if box.has_focus:  # back to the keys; but never take the focus from where a click put it
            self.query_one(DataTable).focus()
        box.display = False
        self.query_one("#config-error", Static).update("")
        self._show_help()

    def action_back(self) -> None:
        if self.editing:
            self._end_edit()
        else:
            self.post_message(self.Back())

    def action_reset_key(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
            self.post_message(self.KeyReset(key))
