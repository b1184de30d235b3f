"""Every metric a run reports, one row each: what it is called, how it reads, where it goes.

The trainer puts a metric into its `step` or `eval` event under `key`; this
table is all the rest of the code knows about it, README's table of those
events' fields included (`fields_markdown`). The dashboard's plots and
stats, the compare view, the TensorBoard / W&B / trackio sinks, the CSV export
and the headless line all read it, so adding a metric is the trainer's emit
plus one row here.

The eval task's own numbers (addition: accuracy; hellaswag, ppl) are not rows:
they come in the eval event's `metrics` and every reader takes them as they are
(`TASK_TAG` names them for the sinks).

Plain Python: no torch, no Textual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import units


@dataclass(frozen=True)
class Metric:
    key: str  # its field in the event, and its CSV column
    label: str  # what people read: plot titles, the compare view
    doc: str  # what the value is, for README's table of the event's fields
    event: str = "step"  # the event that carries it: step (every log_every steps) or eval
    short: str = ""  # the curve's name in a plot's legend and value cursor
    stat: str | None = None  # its row in the dashboard's stats panel (None: not shown there)
    optional: bool = False  # only some devices report it (the event then lacks it): no stats row without it
    text: Callable[[float | None], str] = units.number  # how a value reads on screen
    headless: Callable[[float | None], str | None] | None = None  # its part of the headless step line (None: none)
    tag: str | None = None  # its TensorBoard / W&B / trackio name (None: not sent)
    csv: bool = True  # a column of `gptbench export --format csv`
    plot: str | None = None  # the dashboard plot it is drawn in (see PLOTS; None: no curve)
    smooth: bool = True  # noisy per-step values: the plot's EMA applies
    log_scale: bool = True  # a log y axis makes sense for it
    color: int = 250  # the curve's xterm-256 colour ...
    marker: str = "braille"  # ... and marker (plotext's braille line, or a character)


METRICS: tuple[Metric, ...] = (
    # The clock and the token count: CSV columns only (the plots' x axis is elapsed_s).
    Metric("elapsed_s", "elapsed", "wall time since the run began, across resumes", text=units.duration),
    Metric(
        "active_s",
        "active",
        "the same without paused and sampling time: what the ETA uses",
        text=units.duration,
        csv=False,
    ),
    Metric("tokens_seen", "tokens seen", "tokens trained on since the run began", text=units.count),
    Metric(
        "loss",
        "train loss",
        "the mean train loss over the steps since the last step event",
        short="train",
        stat="loss",
        headless=lambda v: f"loss [bold]{v:.4f}[/]",
        tag="train/loss",
        plot="loss",
        color=45,
    ),
    Metric(
        "val_loss",
        "val loss",
        "the mean loss over `train.eval_steps` val batches",
        event="eval",
        short="val",
        tag="val/loss",
        plot="loss",
        smooth=False,
        color=208,
        marker="•",
    ),
    Metric(
        "lr",
        "learning rate",
        "the learning rate of the last step (AdamW's; Muon's is `train.muon_lr` on the same schedule)",
        short="lr",
        headless=lambda v: f"lr {v:.2e}",
        tag="train/lr",
        plot="lr",
        smooth=False,
        log_scale=False,
        color=77,
    ),
    Metric(
        "grad_norm",
        "grad norm",
        "the mean gradient norm over the interval, before clipping",
        short="grad norm",
        headless=lambda v: f"grad {v:.3f}",
        tag="train/grad_norm",
        plot="grad_norm",
        color=170,
    ),
    Metric(
        "tokens_per_sec",
        "tokens/sec",
        "tokens trained per second over the interval, with time paused, sampling, evaluating or saving left out, "
        "and the session's first step, which compiles and warms up: null for an interval of that step alone",
        short="tok/s",
        stat="tok/s",
        text=units.count,
        headless=lambda v: f"{units.count(v)} tok/s",
        tag="perf/tokens_per_sec",
        plot="tokens_per_sec",
        log_scale=False,
        color=220,
    ),
    Metric(
        "mfu",
        "model FLOPs utilization",
        "model FLOPs per second over the GPU's dense 16-bit peak: null off-GPU, and on a GPU without a published peak",
        stat="MFU",
        text=units.percent,
        headless=lambda v: None if v is None else f"MFU {v * 100:.1f}%",  # a CPU has no MFU: no field
        tag="perf/mfu",
        log_scale=False,
    ),
    Metric(
        "gpu_mem_gb",
        "GPU memory (GB)",
        "CUDA only: the peak GPU memory allocated, GB",
        stat="GPU mem",
        text=lambda v: units.DASH if v is None else f"{v:.1f} GB",
        optional=True,  # CUDA only
        tag="perf/gpu_mem_gb",
        csv=False,
        log_scale=False,
    ),
)

BY_KEY = {m.key: m for m in METRICS}

# The dashboard's plots, in grid order: plot name -> title. A plot of one curve takes that metric's label.
PLOTS = {"loss": "loss", "lr": "learning rate", "grad_norm": "grad norm", "tokens_per_sec": "tokens/sec"}

# The sinks' name of an eval task's metric (addition's accuracy: val/accuracy).
TASK_TAG = "val/{}"


# Besides its metrics, a step or eval event carries its step, and an eval the task's own numbers.
STEP_FIELD = {"step": "the optimizer steps done", "eval": "the step whose weights were evaluated"}
TASK_FIELD = (
    'the task\'s numbers (addition: `{"accuracy": ..., "accuracy_all": ...}`; `train.eval_tasks` add '
    "`hellaswag_acc_norm`, `hellaswag_acc`, `ppl`, `ppl_loss`)"
)


def fields_markdown() -> str:
    """README's table of the step and eval events' fields, made from the rows (see readme_tables.py)."""
    rows = ["| event | field | what it is |", "| --- | --- | --- |"]
    for event, step in STEP_FIELD.items():
        fields = [("step", step), *((m.key, m.doc) for m in of_event(event))]
        if event == "eval":
            fields.append(("metrics", TASK_FIELD))
        rows += [f"| `{event}` | `{key}` | {doc.replace('|', '/')} |" for key, doc in fields]
    return "\n".join(rows)


def of_event(event: str) -> tuple[Metric, ...]:
    """The metrics a step or an eval event carries."""
    return tuple(m for m in METRICS if m.event == event)


def plotted() -> tuple[Metric, ...]:
    """The metrics drawn as curves (the dashboard's plots, the compare view), in table order."""
    return tuple(m for m in METRICS if m.plot)


def in_plot(plot: str) -> tuple[Metric, ...]:
    return tuple(m for m in METRICS if m.plot == plot)


def task_label(name: str) -> str:
    """How an eval task's metric reads: "accuracy_all" -> "accuracy all"."""
    return name.replace("_", " ")


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
