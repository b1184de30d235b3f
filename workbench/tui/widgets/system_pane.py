"""SystemPane: the machine while the run trains: CPU, RAM, the trainer's memory, GPUs.

Rendered from the trainer's latest `system` event (see system_monitor.py), so a
live, attached and replayed run show the same; the app itself reads nothing.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ... import units
from ...run_state import RunState

LABEL_WIDTH = 10


def number_or_dash(value, fmt: str) -> str:
    return units.DASH if value is None else fmt.format(value)


class SystemPane(Static):
    def on_mount(self) -> None:
        self.border_title = "system"

    def show(self, state: RunState) -> None:
        e = state.system
        if e is None:
            why = (
                "this run's events hold no system readings"
                if state.is_over
                else "the trainer reports every few seconds"
            )
            self.update(Text(f"no readings yet: {why}", style="dim"), layout=False)
            return
        # Once the trainer is gone its readings are history, not the machine now: say so on every one.
        was = "was " if state.is_over else ""
        rows = [
            ("CPU", f"{was}{e['cpu_percent']}% of {e['cpu_count']} cores"),
            ("RAM", f"{was}{e['ram_used_gb']:.1f} / {e['ram_total_gb']:.1f} GB"),
            ("trainer", f"exited, was {e['rss_gb']:.2f} GB" if was else f"{e['rss_gb']:.2f} GB resident"),
        ]
        for gpu in e["gpus"]:
            rows += [
                (f"GPU {gpu['index']}", gpu.get("name") or units.DASH),
                ("  util", was + number_or_dash(gpu.get("util_percent"), "{}%")),
                (
                    "  memory",
                    f"{was}{number_or_dash(gpu.get('mem_used_gb'), '{:.1f}')} / "
                    f"{number_or_dash(gpu.get('mem_total_gb'), '{:.1f}')} GB",
                ),
                ("  power", was + number_or_dash(gpu.get("power_w"), "{} W")),
                ("  temp", was + number_or_dash(gpu.get("temp_c"), "{} °C")),
            ]
        if not e["gpus"]:
            rows.append(("GPU", "none"))
        text = Text(overflow="fold")
        if was:
            text.append("trainer exited; last readings\n", style="dim")
        for label, value in rows:
            text.append(f"{label:<{LABEL_WIDTH}}", style="dim")
            text.append(f"{value}\n", style="dim" if was else "")
        if not e["gpus"]:
            text.append(e.get("gpu_note") or "no NVIDIA GPU", style="dim")
        text.rstrip()
        self.update(text, layout=False)
