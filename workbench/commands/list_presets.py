"""`gptbench presets`: what each preset trains, how big, how many tokens a step.

A user preset that cannot be read or does not resolve to a valid config is
left out of the table, with one note each under it.
"""

from __future__ import annotations

import sys

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import presets, units
from ..config import ConfigError

# Below this width the descriptions go under the table, in a column of their own
# (in the table they would be squeezed to a few characters a line).
WIDE = 120


def list_presets() -> None:
    console = Console()
    wide = console.width >= WIDE
    table = Table(
        title="presets (figures for the profile a CPU would use)",
        title_justify="left",
        box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD,
    )
    table.add_column("name", no_wrap=True)
    for column in ("params", "tokens/step", "steps"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("profiles", no_wrap=True)
    if wide:
        table.add_column("what it trains", ratio=1)
    descriptions = Table.grid(padding=(0, 2))
    descriptions.add_column(no_wrap=True)
    descriptions.add_column()
    found, unreadable = presets.scan()
    skipped = [exc.message for exc in unreadable]  # these name their file
    for preset in found.values():
        try:
            s = presets.summary(preset, "cpu")
        except ConfigError as exc:
            skipped.append(f"{preset.path}: {exc.message}")
            continue
        figures = [
            escape(s["name"]),
            units.count(s["params"]),
            units.count(s["tokens_per_step"]),
            str(s["max_steps"]),
            escape(", ".join(preset.profiles) or "-"),
        ]
        table.add_row(*figures, *([escape(s["description"])] if wide else []))
        descriptions.add_row(escape(s["name"]), escape(s["description"]))
    console.print(table)
    if not wide:
        console.print(descriptions)
    for message in skipped:
        print(f"skipped: {message}", file=sys.stderr)
