"""`gptbench export RUN_DIR --format hf|llmc|csv|tensorboard --out PATH`.

- hf, llmc: weights out, written by `python -m workbench.engine.export` (the
  CLI never imports torch); we print its lines.
- csv, tensorboard: metrics out, from events.jsonl, here; a live run exports
  what it has logged so far.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from .. import metrics
from ..config import ConfigError
from ..launcher import run_job
from ..metric_sinks import TensorBoardSink, scalars
from ..runs import read_events, require_run_dir

FORMATS = ("hf", "llmc", "csv", "tensorboard")


def export(run_dir: Path, fmt: str, out: Path, checkpoint: str) -> int:
    run_dir = require_run_dir(run_dir)
    if fmt not in FORMATS:
        raise ConfigError(
            f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}.", "e.g. --format hf for transformers."
        )
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"--checkpoint must be best or last, got {checkpoint!r}.", "use --checkpoint best")
    if fmt == "csv":
        rows = metric_rows(read_events(run_dir))
        if str(out) == "-":
            write_csv(rows, sys.stdout)
        else:
            with open(_new_file(out), "w", newline="", encoding="utf-8") as f:
                write_csv(rows, f)
            print(f"wrote {out} ({len(rows)} rows)")
        return 0
    out = _empty_folder(out)
    if fmt == "tensorboard":
        n = write_tensorboard(read_events(run_dir), out)
        print(f"wrote {n} TensorBoard events to {out}: tensorboard --logdir {out}")
        return 0
    return _export_weights(run_dir, fmt, out, checkpoint)


def metric_rows(events: list[dict]) -> list[dict]:
    """One row per logged step; an eval's val loss and task metrics join the row of its step."""
    rows: dict[int, dict] = {}
    for e in events:
        if e["event"] in ("step", "eval"):
            row = rows.setdefault(e["step"], {"step": e["step"]})
            row.update({m.key: e.get(m.key) for m in metrics.of_event(e["event"]) if m.csv})
            if e["event"] == "eval":
                row.update(e.get("metrics") or {})
    return [rows[step] for step in sorted(rows)]


def write_csv(rows: list[dict], f) -> None:
    # step, then every metric with a CSV column (metrics.py), then the task's metrics by name (e.g. accuracy)
    columns = ["step", *(m.key for m in metrics.METRICS if m.csv)]
    extra = sorted({k for row in rows for k in row} - set(columns))
    writer = csv.DictWriter(f, fieldnames=[*columns, *extra], restval="")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


def write_tensorboard(events: list[dict], out: Path) -> int:
    try:
        sink = TensorBoardSink(out)
    except ImportError:
        raise ConfigError(
            "--format tensorboard needs the tensorboard package, which is not installed.",
            'pip install "gptbench[tensorboard]", or use --format csv.',
        ) from None
    n = 0
    for e in events:
        values = scalars(e)
        if values:
            sink.write(e["step"], values, e["t"])
            n += 1
    sink.close()
    return n


def _export_weights(run_dir: Path, fmt: str, out: Path, checkpoint: str) -> int:
    def on_event(e: dict) -> None:
        if e["event"] == "log":
            print(e["message"], flush=True)

    argv = [
        sys.executable,
        "-m",
        "workbench.engine.export",
        "--run-dir",
        str(run_dir),
        "--format",
        fmt,
        "--out",
        str(out),
        "--checkpoint",
        checkpoint,
    ]
    job = run_job(argv, on_event, run_dir, on_stderr=lambda line: print(line, file=sys.stderr))
    if job.error:  # said like any other mistake: one sentence and a hint, exit code 2
        raise ConfigError(job.error["message"], job.error["hint"])
    return job.code


def _empty_folder(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"{out} already exists and is not an empty folder.",
            "export into a new or empty folder; nothing was overwritten.",
        )
    return out


def _new_file(out: Path) -> Path:
    if out.exists():
        raise ConfigError(
            f"{out} already exists.", "pick a new file name (nothing was overwritten), or --out - for stdout."
        )
    if not out.parent.is_dir():
        raise ConfigError(
            f"The folder {out.parent} does not exist.", "create it first, or write to an existing folder."
        )
    return out
