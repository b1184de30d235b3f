"""CrashPanel: what went wrong when the trainer died, and how to go on."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from ...run_state import Crash

STDERR_LINES = 8


class CrashPanel(Static):
    def show(self, crash: Crash, resumable: bool) -> None:
        code = "unknown (not started by this app)" if crash.exit_code is None else str(crash.exit_code)
        parts = [Text.assemble(("The trainer died. ", "bold"), f"Exit code: {code}.")]
        if crash.error:
            parts.append(Text(crash.error["message"], style="bold"))
            if crash.error.get("hint"):
                parts.append(Text(f"Hint: {crash.error['hint']}"))
        tail = [line for line in crash.stderr_tail if line.strip()][-STDERR_LINES:]
        if tail:
            parts.append(Text("stderr (last lines):", style="dim"))
            parts.extend(Text(line, style="dim") for line in tail)
        if resumable:
            parts.append(Text("Press R to resume from the last checkpoint.", style="bold"))
        else:
            parts.append(Text("The run directory has no last.pt, so there is nothing to resume from."))
        self.update(Group(*parts))
