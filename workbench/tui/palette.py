"""ScreenActions: the command palette's view of the active screen's key bindings.

Every control is a binding with a description (shown in the footer) and a
tooltip (shown here as help); this provider offers the ones that are enabled
right now, so the palette and the footer always agree on what can be done.
"""

from __future__ import annotations

from functools import partial

from textual.actions import parse as parse_action
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from .key_bindings import declared_bindings


class ScreenActions(Provider):
    def _commands(self) -> list[Binding]:
        screen = self.screen
        return [b for b in declared_bindings(screen) if screen.check_action(*parse_action(b.action)[1:]) is True]

    def _run(self, binding: Binding) -> partial:
        return partial(self.app.run_action, binding.action, self.screen)

    async def discover(self) -> Hits:
        for binding in self._commands():
            yield DiscoveryHit(binding.description, self._run(binding), help=binding.tooltip or f"key: {binding.key}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for binding in self._commands():
            title = f"{binding.description}  ({binding.key})"
            score = matcher.match(title + " " + (binding.tooltip or ""))
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._run(binding), help=binding.tooltip)
