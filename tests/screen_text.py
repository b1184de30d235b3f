"""Reading the app's screen as a person would, for the Pilot tests."""

import html
import re
import time

CELL_WIDTH = 12.2  # the width of one terminal cell in Textual's SVG export


def visible_text(app) -> str:
    """The terminal's text right now, each piece in its column (so spacing reads as on screen)."""
    svg = app.export_screenshot()
    rows: dict[float, list[tuple[int, str]]] = {}
    for x, y, text in re.findall(r'<text[^>]* x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(y), []).append((round(float(x) / CELL_WIDTH), html.unescape(text).replace("\xa0", " ")))
    lines = []
    for _, pieces in sorted(rows.items()):
        line = ""
        for column, text in sorted(pieces):
            line = line.ljust(column) + text
        lines.append(line)
    return "\n".join(lines)


async def until(pilot, condition, what: str = "the app to get there", timeout: float = 10.0) -> None:
    """Wait for what the test expects, on the app's own loop; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)
