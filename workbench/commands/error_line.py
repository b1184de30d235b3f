"""How every CLI verb prints a failure: one sentence, then the hint.

Printed with soft wrap: a long path stays on one line (a terminal wraps it for
the eye; a log or a pipe keeps it whole for grep and copy-paste).
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape


def error_markup(message: str, hint: str = "") -> str:
    text = f"[red bold]error:[/] {escape(message)}"
    return text + f"\n  [yellow]hint:[/] {escape(hint)}" if hint else text


def print_error(console: Console, message: str, hint: str = "") -> None:
    console.print(error_markup(message, hint), soft_wrap=True)
