"""RunStats: the numbers beside the plots, rendered from a RunState; one line of them on small screens."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...progress import format_count, format_duration
from .. import units
from ..run_state import RunState

LABEL_WIDTH = 13


class RunStats(Static):
    def show(self, state: RunState) -> None:
        # Plain padded lines, not a rich Table: this redraws every second while
        # training, and a Table's layout pass costs more than the rest together.
        text = Text(no_wrap=True, overflow="ellipsis")
        for label, value in self.rows(state):
            text.append(f"{label:<{LABEL_WIDTH}}", style="dim")
            text.append(f"{value}\n")
        text.rstrip()
        self.update(text, layout=False)  # a fixed-size panel: no need to lay the screen out again

    @staticmethod
    def rows(state: RunState) -> list[tuple[str, str]]:
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
            ("elapsed", format_duration(state.elapsed_s)),
            ("ETA", format_duration(state.eta_s)),
            ("tokens", format_count(state.tokens_seen)),
            ("tok/s", format_count(step.get("tokens_per_sec"))),
            ("MFU", units.percent(step.get("mfu"))),
            ("loss", units.number(step.get("loss"))),
            ("best val", units.number(state.best_val_loss)),
        ]
        rows += [(name.replace("_", " "), units.number(value)) for name, value in state.metrics.items()]
        device = state.device_name
        rows += [
            ("device", device or units.DASH),
            ("dtype", started.get("dtype") or units.DASH),
            ("compile", {True: "on", False: "off"}.get(started.get("compile"), units.DASH)),
        ]
        if step.get("gpu_mem_gb") is not None:
            rows.append(("GPU mem", f"{step['gpu_mem_gb']:.1f} GB"))
        return rows


class RunStatsLine(Static):
    """The stats that matter most, on one line (the dashboard on a small terminal; `i` shows them all).

    Most needed first, so what an 80-column line cannot hold is the least needed."""

    def show(self, state: RunState) -> None:
        step = state.last_step or {}
        headline = next(iter(state.metrics.items()), None)  # the task's metric (addition: held-out accuracy)
        of = f"/{state.max_steps:,}" if state.max_steps else ""
        micro = state.progress if state.micro_step else None  # a long step in progress: "step 3/100 · micro 7/32"
        parts = [
            (
                "step",
                f"{micro['step']:,}{of} · micro {micro['done']}/{micro['total']}" if micro else f"{state.step:,}{of}",
            ),
            ("loss", units.number(step.get("loss"), 3)),
            ("val", units.number(state.best_val_loss, 3)),
            *([(headline[0].replace("_", " "), units.number(headline[1], 3))] if headline else []),
            ("ETA", format_duration(state.eta_s)),
            ("tok/s", format_count(step.get("tokens_per_sec"))),
            ("elapsed", format_duration(state.elapsed_s)),
        ]
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (label, value) in enumerate(parts):
            text.append(("  " if i else "") + label + " ", style="dim")
            text.append(value)
        self.update(text, layout=False)
