"""HelpScreen: every key of the screen below it, one line per action.

Built from the bindings themselves (the screen's, those of the widgets on it
that have keys of their own, and the app's), so it is never out of date.
Keys that do nothing right now (pause on a finished run) are shown dim.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.actions import parse as parse_action
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..key_bindings import declared_bindings

KEY_WIDTH = 7
DESCRIPTION_WIDTH = 16


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]

    def __init__(self, screen: Screen):
        super().__init__()
        self.sections = self._sections(screen, getattr(screen, "HELP_TITLE", type(screen).__name__))

    def _sections(self, screen: Screen, title: str) -> list[tuple[str, list[tuple[Binding, bool]]]]:
        def enabled(binding: Binding) -> bool:
            return screen.check_action(*parse_action(binding.action)[1:]) is True

        sections = [(title, [(b, enabled(b)) for b in declared_bindings(screen)])]
        widgets_seen: set[type] = set()
        for widget in screen.query("*"):
            kind = type(widget)
            if kind in widgets_seen or not kind.__module__.startswith("workbench."):
                continue
            widgets_seen.add(kind)
            own = declared_bindings(widget)
            if own:
                sections.append((getattr(kind, "HELP_TITLE", kind.__name__), [(b, True) for b in own]))
        sections.append(("everywhere", [(b, True) for b in declared_bindings(screen.app)]))
        return sections

    def compose(self) -> ComposeResult:
        lines = []
        for heading, bindings in self.sections:
            lines.append(Text(heading, style="bold underline"))
            for binding, on in bindings:
                lines.append(
                    Text.assemble(
                        (f"{self.app.get_key_display(binding):>{KEY_WIDTH}}  ", "bold" if on else "dim"),
                        (f"{binding.description:<{DESCRIPTION_WIDTH}}", "" if on else "dim"),
                        (binding.tooltip or "", "dim"),
                        no_wrap=True,
                        overflow="ellipsis",
                    )
                )
        lines.append(Text("esc or ? closes · dim keys do nothing right now · ctrl+p searches them all", style="italic"))
        with VerticalScroll(id="help-dialog") as dialog:
            # Every line whole where the screen is wide enough (ellipsis where not): border, padding, scrollbar.
            dialog.styles.width = max(line.cell_len for line in lines) + 2 + 2 + 2
            yield Static(Group(*lines))
