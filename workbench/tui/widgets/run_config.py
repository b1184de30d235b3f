"""RunConfig: the run's resolved config, the keys changed from its preset marked and listed first."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ..config_values import changed_keys

CHANGED = "bold yellow"
COLUMNS = ("", "key", "value", "preset")


class RunConfig(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="run-config-note")
        yield DataTable(id="run-config-table", cursor_type="row", zebra_stripes=True)

    def show(self, values: dict[str, str], preset: dict[str, str] | None, note: str) -> None:
        """`preset`: the preset's own values (None when it cannot be read; `note` says why)."""
        changed = changed_keys(values, preset) if preset is not None else []
        rows = {}
        # The changed keys first: they are what a person opens this tab for.
        for key in [*changed, *(k for k in values if k not in changed)]:
            mark = key in changed
            style = CHANGED if mark else ""
            rows[key] = (
                Text("*" if mark else "", style=CHANGED),
                Text(key, style=style),
                Text(values[key], style=style),
                Text(preset.get(key, "") if (preset is not None and mark) else "", style="dim"),
            )
        table = self.query_one(DataTable)
        table.clear(columns=True)
        # Widths from the content, set with the columns: an auto width is only
        # measured on the table's next idle, and a frame drawn before it is cut short.
        for i, label in enumerate(COLUMNS):
            table.add_column(label, width=max([len(label), *(row[i].cell_len for row in rows.values())]))
        for key, row in rows.items():
            table.add_row(*row, key=key)
        if preset is None:
            summary = Text(note, style="dim")
        elif changed:
            summary = Text.assemble(
                ("* ", CHANGED),
                f"{len(changed)} key{'s' if len(changed) > 1 else ''} changed from the preset ",
                ("(its value on the right)", "dim"),
            )
        else:
            summary = Text("the preset as it is: no key changed", style="dim")
        self.query_one("#run-config-note", Static).update(summary)
