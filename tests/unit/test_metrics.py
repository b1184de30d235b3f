"""The metric table: one row is all a reader needs to show, send, export and plot a metric."""

import io
from pathlib import Path

from rich.console import Console

from workbench import metrics, readme_tables
from workbench.commands.export import metric_rows, write_csv
from workbench.commands.run import HeadlessView
from workbench.metric_sinks import scalars
from workbench.run_state import RunState
from workbench.tui.widgets.run_stats import RunStats

STARTED = {"event": "run_started", "config": {"train": {"max_steps": 100}}, "t": 0.0}
STEP = {"event": "step", "step": 10, "loss": 2.5, "lr": 1e-3, "grad_norm": 0.5, "tokens_per_sec": 2000.0}
STEP |= {"mfu": None, "elapsed_s": 3.0, "active_s": 3.0, "tokens_seen": 640, "t": 1.0}
EVAL = {"event": "eval", "step": 10, "val_loss": 2.7, "metrics": {"accuracy": 0.5}, "t": 2.0}

WATTS = metrics.Metric(
    "watts",
    "power draw",
    "the GPU's power draw, W",
    short="W",
    stat="power",
    text=lambda v: f"{v:.0f} W",
    headless=lambda v: f"{v:.0f} W",
    tag="perf/watts",
    plot="tokens_per_sec",
    log_scale=False,
)


def test_a_new_row_reaches_every_reader(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", (*metrics.METRICS, WATTS))
    step = {**STEP, "watts": 412.0}

    assert scalars(step)["perf/watts"] == 412.0

    out = io.StringIO()
    write_csv(metric_rows([step, EVAL]), out)
    header, row = out.getvalue().splitlines()
    assert header.split(",")[-2:] == ["watts", "accuracy"]  # the table's columns, then the task's
    assert row.split(",")[-2:] == ["412.0", "0.5"]

    view = HeadlessView(Console(), as_json=False)
    view.max_steps = 100
    assert "| 412 W | ETA" in view.format(step)

    state = RunState("run")
    for event in (STARTED, step, EVAL):
        state.apply(event)
    assert ("power", "412 W") in RunStats.rows(state)
    assert state.series["watts"].values == [412.0]
    assert "| `step` | `watts` | the GPU's power draw, W |" in metrics.fields_markdown()


def test_readme_lists_the_step_and_eval_fields_from_the_table():
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert readme_tables.table_in(readme, "metric fields") == metrics.fields_markdown(), (
        f"run `{readme_tables.COMMAND}`"
    )
    for m in metrics.METRICS:
        assert f"| `{m.event}` | `{m.key}` | {m.doc} |" in readme


def test_the_readers_agree_with_the_table_today():
    assert scalars(STEP) == {
        "train/loss": 2.5,
        "train/lr": 1e-3,
        "train/grad_norm": 0.5,
        "perf/tokens_per_sec": 2000.0,
    }  # mfu None is not a number; gpu_mem_gb is CUDA's
    assert scalars(EVAL) == {"val/loss": 2.7, "val/accuracy": 0.5}
    out = io.StringIO()
    write_csv(metric_rows([STEP, EVAL]), out)
    assert out.getvalue().splitlines()[0] == (
        "step,elapsed_s,tokens_seen,loss,val_loss,lr,grad_norm,tokens_per_sec,mfu,accuracy"
    )
    # a device that never reports GPU memory gets no row for it
    state = RunState("run")
    state.apply(STEP)
    labels = [label for label, _ in RunStats.rows(state)]
    assert "GPU mem" not in labels and labels.index("loss") < labels.index("tok/s") < labels.index("MFU")
    state.apply({**STEP, "step": 20, "gpu_mem_gb": 3.14})
    assert ("GPU mem", "3.1 GB") in RunStats.rows(state)
