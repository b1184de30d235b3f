"""`gptbench presets`: what each preset trains, how big, how many tokens a step."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .. import presets
from ..progress import format_count


def list_presets() -> None:
    table = Table(title="presets (figures for the profile a CPU would use)", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in ("params", "tokens/step", "steps"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("profiles", no_wrap=True)
    table.add_column("what it trains", ratio=1)
    for preset in presets.available().values():
        s = presets.summary(preset, "cpu")
        table.add_row(
            s["name"], format_count(s["params"]), format_count(s["tokens_per_step"]), str(s["max_steps"]),
            ", ".join(preset.profiles) or "-", s["description"],
        )
    Console().print(table)
