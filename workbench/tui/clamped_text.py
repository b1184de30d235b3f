"""ClampedText: text that ends in an ellipsis where the lines it is given run out.

A Static with a max-height crops the lines below it without a sign; a help
line cut mid-sentence reads as the whole help. Textual renders a widget's
content at its final height, so this renderable knows how many lines it has.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

ELLIPSIS = "…"


class ClampedText:
    def __init__(self, text: Text):
        self.text = text

    def __str__(self) -> str:
        return self.text.plain

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = self.text.wrap(console, options.max_width)
        if options.height is not None and len(lines) > options.height >= 1:
            lines = lines[: options.height]
            last = lines[-1]
            last.rstrip()
            last.truncate(options.max_width - len(ELLIPSIS))
            last.append(ELLIPSIS, style="bold")
        yield Text("\n").join(lines)
