"""RunConfig: the run's resolved config, the keys changed from its preset marked and listed first."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ..config_values import changed_keys

CHANGED = "bold yellow"


class RunConfig(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="run-config-note")
        table = DataTable(id="run-config-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("", "key", "value", "preset")
        yield table

    def show(self, values: dict[str, str], preset: dict[str, str] | None, note: str) -> None:
        """`preset`: the preset's own values (None when it cannot be read; `note` says why)."""
        table = self.query_one(DataTable)
        table.clear()
        changed = changed_keys(values, preset) if preset is not None else []
        # The changed keys first: they are what a person opens this tab for.
        for key in [*changed, *(k for k in values if k not in changed)]:
            value = values[key]
            mark = key in changed
            style = CHANGED if mark else ""
            table.add_row(
                Text("*", style=CHANGED) if mark else "",
                Text(key, style=style),
                Text(value, style=style),
                Text(preset.get(key, "") if (preset is not None and mark) else "", style="dim"),
                key=key,
            )
        if preset is None:
            summary = Text(note, style="dim")
        elif changed:
            summary = Text.assemble(("* ", CHANGED), f"{len(changed)} key{'s' if len(changed) > 1 else ''} changed from the preset ", ("(its value on the right)", "dim"))
        else:
            summary = Text("the preset as it is: no key changed", style="dim")
        self.query_one("#run-config-note", Static).update(summary)
