"""A sweep's report: one row per setting, ranked, as a Rich table, markdown, CSV or JSON, and a chart.

Each figure is the median over the setting's seeds with its min–max beside it,
so a difference reads against the spread: the objective (completed trials),
the best val loss, and the steps and seconds to the target val loss (when the
sweep has one). A time objective measured with trials running side by side
says so under the table.

Plain Python (Rich and plotext, no torch).
"""

from __future__ import annotations

import csv
import io
import math

from rich import box
from rich.markup import escape
from rich.table import Table

from .. import units
from .trials import STATUSES, Setting, Spread, SweepView


def spread_text(s: Spread, digits: int = 4, duration: bool = False) -> str:
    if s.median is None:
        return units.DASH

    def fmt(x: float) -> str:
        if math.isinf(x):
            return "never"
        return f"{x:.1f}s" if duration else units.number(x, digits)

    if s.n == 1 or s.low == s.high:
        return fmt(s.median)
    return f"{fmt(s.median)} [{fmt(s.low)}–{fmt(s.high)}]"


def trials_text(setting: Setting) -> str:
    """ "3 completed, 1 pruned" """
    return ", ".join(f"{setting.count(s)} {s}" for s in STATUSES if setting.count(s))


def columns(view: SweepView) -> list[str]:
    cols = ["rank", "setting", "trials", view.objective.label, "best val"]
    if view.objective.kind == "val_loss":
        cols[-1] = "best val (all)"  # the objective counts completed seeds; this one pruned ones too
    if view.target is not None and view.objective.kind not in ("steps_to", "seconds_to"):
        cols += [f"steps to {view.target:g}", f"seconds to {view.target:g}"]
    elif view.objective.kind == "steps_to":
        cols += [f"seconds to {view.target:g}"]
    elif view.objective.kind == "seconds_to":
        cols += [f"steps to {view.target:g}"]
    return cols


def row(view: SweepView, s: Setting) -> list[str]:
    objective = spread_text(s.objective, duration=view.objective.is_time)
    if s.objective.n < s.count("completed"):  # some seeds never reached the target
        objective += f" ({s.objective.n}/{s.count('completed')} reached)"
    cells = [str(s.rank) if s.rank else units.DASH, s.text, trials_text(s), objective, spread_text(s.best_val)]
    for col in columns(view)[5:]:
        cells.append(
            spread_text(s.steps_to_target, digits=6)
            if col.startswith("steps")
            else spread_text(s.seconds_to_target, duration=True)
        )
    return cells


def notes(view: SweepView) -> list[str]:
    lines = []
    if view.objective.kind in ("steps_to", "seconds_to"):
        lines.append(
            f"{view.objective.label}: median [min–max] over the seeds that reached it "
            "(a trial stops at its target; seconds are the run's own clock, start-up left out)"
        )
    else:
        lines.append(f"{view.objective.label}: median [min–max] over the setting's completed seeds")
    note = view.concurrency_note
    if note and (view.objective.is_time or view.target is not None):
        lines.append(note)
    return lines


def rich_table(view: SweepView) -> Table:
    counts = ", ".join(f"{view.count(s)} {s}" for s in STATUSES if view.count(s)) or "no trials"
    table = Table(
        title=f"sweep {escape(view.name)}: {escape(view.spec.describe() if view.spec else '?')} · {counts}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=escape("\n".join(notes(view))),
        caption_justify="left",
    )
    rows = [row(view, s) for s in view.settings]
    for i, col in enumerate(columns(view)):
        cells = [r[i] for r in rows]
        if col == "setting":  # the setting is what a row is: never cut, folded only past 40 columns
            table.add_column(col, min_width=min(max(map(len, cells), default=10), 40), overflow="fold")
        else:  # on a narrow terminal a figure's [min–max] goes under its median, whole
            word = max((len(w) for c in cells for w in c.split(" ")), default=4)
            table.add_column(col, justify="left" if col == "trials" else "right", min_width=word)
    for s, cells in zip(view.settings, rows):
        table.add_row(*(escape(c) for c in cells), style="bold" if s.rank == 1 else None)
    return table


def markdown(view: SweepView) -> str:
    cols = columns(view)
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for s in view.settings:
        cells = row(view, s)
        cells[1] = f"`{cells[1]}`"
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines + [""] + [f"{n}." for n in notes(view)]) + "\n"


def csv_text(view: SweepView) -> str:
    keys = list(dict.fromkeys(k for s in view.settings for k in s.params))
    out = io.StringIO()
    writer = csv.writer(out)
    figures = ("objective", "best_val", "steps_to_target", "seconds_to_target")
    header = ["rank", *keys, *STATUSES]
    for f in figures:
        header += [f"{f}_median", f"{f}_min", f"{f}_max", f"{f}_n"]
    writer.writerow(header)
    for s in view.settings:
        cells = [s.rank or "", *(s.params.get(k, "") for k in keys), *(s.count(st) for st in STATUSES)]
        for f in figures:
            sp = getattr(s, f)
            cells += [_num(sp.median), _num(sp.low), _num(sp.high), sp.n]
        writer.writerow(cells)
    return out.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else repr(x)


def to_json(view: SweepView) -> dict:
    return {
        "sweep": view.name,
        "path": str(view.path),
        "spec": view.spec.to_json() if view.spec else None,
        "objective": view.objective.label,
        "direction": view.objective.direction,
        "target_val_loss": view.target,
        "concurrency_note": view.concurrency_note,
        "settings": [s.to_json() for s in view.settings],
        "trials": [t.to_json() for t in view.trials],
    }


def numeric_params(view: SweepView) -> list[str]:
    """The swept keys whose values are all numbers, with two or more of them: what a chart can show."""
    keys = []
    for key in dict.fromkeys(k for s in view.settings for k in s.params):
        values = {s.params.get(key) for s in view.settings}
        try:
            numbers = {float(v) for v in values}
        except (TypeError, ValueError):
            continue
        if len(numbers) > 1:
            keys.append(key)
    return keys


def charts(view: SweepView, width: int, color: bool) -> list[str]:
    """plotext charts of the objective against each numeric parameter: every completed trial, and the medians."""
    import plotext as plt

    out = []
    for key in numeric_params(view):
        points = [
            (float(t.params[key]), t.objective)
            for t in view.trials
            if t.status == "completed" and t.objective is not None and math.isfinite(t.objective)
        ]
        if not points:
            continue
        medians = sorted(
            (float(s.params[key]), s.objective.median)
            for s in view.settings
            if s.objective.median is not None and math.isfinite(s.objective.median)
        )
        xs = [x for x, _ in points]
        log_x = min(xs) > 0 and max(xs) / min(xs) >= 20
        plt.clear_figure()
        plt.plotsize(min(width, 100), 15)
        if not color:
            plt.theme("clear")
        plt.scatter(xs, [y for _, y in points], marker="dot", label="trials")
        plt.plot([x for x, _ in medians], [y for _, y in medians], marker="braille", label="median")
        if log_x:
            plt.xscale("log")
        plt.title(f"{view.objective.label} against {key}")
        plt.xlabel(key)
        out.append(plt.build())
    return out
