"""ConfigEditor: every config key of the picked preset, editable in place.

The editor shows values and takes edits; it does not judge them. It posts
`EditSubmitted` and the picker screen validates the whole config with the same
`presets.resolve` the CLI uses, then either accepts the edit (`show_config`) or
hands the error back (`show_error`) with the CLI's exact message and hint.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static


class ConfigEditor(Vertical):
    BINDINGS = [
        Binding("d", "reset_key", "Reset key", tooltip="Drop your edit of the selected key", id="config.reset"),
    ]

    class EditSubmitted(Message):
        def __init__(self, key: str, value: str):
            super().__init__()
            self.key, self.value = key, value

    class KeyReset(Message):
        def __init__(self, key: str):
            super().__init__()
            self.key = key

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.editing: str | None = None  # the key being edited

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
        """Show resolved values; the keys you edited stand out."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for key, value in values.items():
            style = "bold yellow" if key in edited else ""
            table.add_row(Text(key, style=style), Text(value, style=style), key=key)
        table.move_cursor(row=min(row, table.row_count - 1))
        if self.editing:
            self._end_edit()

    def show_error(self, message: str, hint: str) -> None:
        self.query_one("#config-error", Static).update(Text.assemble((message, "bold red"), f" Hint: {hint}" if hint else ""))

    @on(DataTable.RowSelected)
    def _begin_edit(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        self.editing = key
        box = self.query_one("#config-input", Input)
        box.value = str(event.data_table.get_row(event.row_key)[1])
        box.placeholder = key
        box.display = True
        box.focus()
        self.query_one("#config-error", Static).update(Text(f"{key} = …  (enter to apply, escape to cancel)", style="dim"))

    @on(Input.Submitted, "#config-input")
    def _submit(self, event: Input.Submitted) -> None:
        if self.editing:
            self.post_message(self.EditSubmitted(self.editing, event.value.strip()))

    def _end_edit(self) -> None:
        self.editing = None
        self.query_one("#config-input").display = False
        self.query_one("#config-error", Static).update("")
        self.query_one(DataTable).focus()

    def key_escape(self) -> None:
        if self.editing:
            self._end_edit()

    def action_reset_key(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
            self.post_message(self.KeyReset(key))
