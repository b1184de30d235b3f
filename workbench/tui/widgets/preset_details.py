"""PresetDetails: what a preset trains and what a run of it will cost."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from ... import units
from ..estimate import rough_duration


class PresetDetails(Static):
    def show(self, name: str, description: str, facts: dict) -> None:
        """`facts`: params, tokens_per_step, max_steps, device, profile, seconds."""
        self.border_title = name
        self.update(
            Group(
                Text(description or "(no description)"),
                Text.assemble(
                    ("params ", "dim"),
                    units.count(facts["params"]),
                    ("  tokens/step ", "dim"),
                    f"{facts['tokens_per_step']:,}",
                    ("  steps ", "dim"),
                    f"{facts['max_steps']:,}",
                ),
                Text.assemble(
                    ("device ", "dim"),
                    facts["device"],
                    ("  profile ", "dim"),
                    facts["profile"],
                    ("  time ", "dim"),
                    f"{rough_duration(facts['seconds'])} (rough)",
                ),
            )
        )

    def show_error(self, name: str, message: str, hint: str) -> None:
        self.border_title = name
        self.update(Text.assemble((message, "bold red"), f"\nHint: {hint}" if hint else ""))
