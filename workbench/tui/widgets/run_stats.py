"""RunStats: the numbers beside the plots, rendered from a RunState; one line of them on small screens."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from ... import metrics, units
from ...run_state import RunState

LABEL_WIDTH = 13


class RunStats(Widget):
    """One row a line, drawn through Textual's line API: a redraw (once a second while a run is live)
    repaints only the rows whose text changed, mostly elapsed, ETA, step, tokens, loss and tok/s."""

    DIM = Style(dim=True)

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._rows: list[tuple[str, str]] = []

    def show(self, state: RunState, now: float | None = None) -> None:
        """`now`: the wall-clock time, for a live run (elapsed and ETA tick between its events)."""
        rows = self.rows(state, now)
        old, self._rows = self._rows, rows
        if len(rows) != len(old):
            self.refresh()
            return
        for y, (row, before) in enumerate(zip(rows, old)):
            if row != before:
                self.refresh(Region(0, y, self.size.width, 1))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        label, value = self._rows[y]
        base = self.rich_style
        line = Strip([Segment(f"{label:<{LABEL_WIDTH}}", base + self.DIM), Segment(value, base)])
        if line.cell_length > width:  # cut with an ellipsis, as the rest of the app does
            line = Strip([*line.crop(0, max(0, width - 1)), Segment("…", base)])
        return line.extend_cell_length(width, base)

    @staticmethod
    def rows(state: RunState, now: float | None = None) -> list[tuple[str, str]]:
        step = state.last_step or {}
        started = state.started or {}
        rows = [
            ("step", f"{state.step:,} / {state.max_steps:,}" if state.max_steps else f"{state.step:,}"),
            *(
                [
                    (
                        "micro-step",
                        f"{state.progress['done']}/{state.progress['total']} of step {state.progress['step']:,}",
                    )
                ]
                if state.micro_step
                else []
            ),
            ("elapsed", units.duration(state.elapsed_at(now))),
            ("ETA", units.duration(state.eta_at(now))),
            ("tokens", units.count(state.tokens_seen)),
        ]
        # the step's metrics with a row of their own (metrics.py); one this device never reports is left out
        for m in metrics.of_event("step"):
            if m.stat and (m.key in step or not m.optional):
                rows.append((m.stat, m.text(step.get(m.key))))
        rows.append(("best val", units.number(state.best_val_loss)))
        rows += [(metrics.task_label(name), units.number(value)) for name, value in state.task_scores.items()]
        device = state.device_name
        rows += [
            ("device", device or units.DASH),
            ("dtype", started.get("dtype") or units.DASH),
            ("compile", {True: "on", False: "off"}.get(started.get("compile"), units.DASH)),
            ("optimizer", optimizer_name(started)),
        ]
        return rows


def optimizer_name(started: dict) -> str:
    """adamw, or muon + adamw: the config's train.optimizer (a run from before the key: adamw)."""
    if not started:
        return units.DASH
    name = started.get("config", {}).get("train", {}).get("optimizer", "adamw")
    return "muon + adamw" if name == "muon" else name


class RunStatsLine(Static):
    """The stats that matter most, on one line (the dashboard on a small terminal; `i` shows them all).

    Most needed first, and only whole: what the line cannot hold is left out, the least needed first."""

    def show(self, state: RunState, now: float | None = None) -> None:
        step = state.last_step or {}
        headline = next(iter(state.task_scores.items()), None)  # the task's metric (addition: held-out accuracy)
        of = f"/{state.max_steps:,}" if state.max_steps else ""
        micro = state.progress if state.micro_step else None  # a long step in progress: "step 3/100 · micro 7/32"
        parts = [
            (
                "step",
                f"{micro['step']:,}{of} · micro {micro['done']}/{micro['total']}" if micro else f"{state.step:,}{of}",
            ),
            ("loss", units.number(step.get("loss"), 3)),
            ("val", units.number(state.best_val_loss, 3)),
            *([(metrics.task_label(headline[0]), units.number(headline[1], 3))] if headline else []),
            ("elapsed", units.duration(state.elapsed_at(now))),
            *([] if state.is_over else [("ETA", units.duration(state.eta_at(now)))]),
            ("tok/s", metrics.BY_KEY["tokens_per_sec"].text(step.get("tokens_per_sec"))),
        ]
        text = Text(no_wrap=True)
        room = self.content_size.width
        for label, value in parts:
            part = f"{'  ' if text else ''}{label} {value}"
            if text.cell_len + len(part) > room:
                break
            text.append(part[: len(part) - len(value)], style="dim")
            text.append(value)
        self.update(text, layout=False)
