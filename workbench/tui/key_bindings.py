"""The key bindings a screen declares, for the help screen and the command palette.

Textual merges a class's BINDINGS with its bases'; this reads them the same
way (every class in the MRO), so a binding declared once on a base screen
shows in the help and the palette of every screen built on it. Textual's own
bindings (tab, copy, ...) are left to Textual.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.dom import DOMNode


def declared_bindings(node: DOMNode) -> list[Binding]:
    """The described bindings of `node`'s class and its bases, the class's own first, one per action."""
    found: dict[str, Binding] = {}
    for cls in type(node).__mro__:
        if not cls.__module__.startswith("workbench."):
            continue
        for binding in Binding.make_bindings(cls.__dict__.get("BINDINGS", [])):
            if binding.description:
                found.setdefault(binding.action, binding)
    return list(found.values())
