"""The run directory: its layout, reading its events, listing runs.

    RUN_DIR/
      config.json     the fully resolved config (preset, profile, model/data/train)
      meta.json       versions, git sha, device, seed, command line
      events.jsonl    every event, one JSON object per line (see events.py)
      tokenizer.json  how to rebuild the tokenizer (char vocab included)
      last.pt         the latest checkpoint (every train.ckpt_every steps and at the end)
      best.pt         the checkpoint with the best val loss so far
      control.fifo    present while a trainer listens for commands (see control.py)
      labels.json     the user's name, tags and notes for the run (--name, --tag, --notes)

Plain Python: the UI lists, replays and follows runs with it.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from .config import ConfigError
from .control import is_live
from .events import ProtocolError, decode

EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.json"
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
LAST_CKPT = "last.pt"
BEST_CKPT = "best.pt"
LABELS_FILE = "labels.json"


def runs_root() -> Path:
    return Path(os.environ.get("GPTBENCH_RUNS", "runs"))


def slug(text: str) -> str:
    """Text as a file name: "LR sweep / 3e-4" -> "lr-sweep-3e-4"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def new_run_dir(name: str, root: Path | None = None) -> Path:
    """runs/NAME-TIMESTAMP (NAME: the preset, or the user's --name)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = (root or runs_root()) / f"{slug(name) or 'run'}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def is_run_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / EVENTS_FILE).is_file() or (p / CONFIG_FILE).is_file()


def require_run_dir(path: str | Path) -> Path:
    p = Path(path)
    if not is_run_dir(p):
        what = "does not exist" if not p.exists() else "is not a run directory (no events.jsonl or config.json)"
        raise ConfigError(f"{p} {what}.", "pass a directory made by `gptbench run`; `gptbench runs` lists them.")
    return p


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_labels(run_dir: str | Path) -> dict:
    """{"name": str, "tags": [str], "notes": str}: what the user called the run ({} if nothing)."""
    return read_json(Path(run_dir) / LABELS_FILE)


def write_labels(run_dir: str | Path, name: str | None, tags: list[str], notes: str | None) -> None:
    """Store --name/--tag/--notes; on a resume, what is given again replaces the old value."""
    labels = read_labels(run_dir)
    given = {"name": name, "tags": tags or None, "notes": notes}
    labels.update({k: v for k, v in given.items() if v is not None})
    if labels:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / LABELS_FILE).write_text(json.dumps(labels, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_events(run_dir: str | Path) -> list[dict]:
    """All complete events so far (a torn last line from a live writer is skipped)."""
    events = []
    try:
        with open(Path(run_dir) / EVENTS_FILE, encoding="utf-8") as f:
            for line in f:
                try:
                    events.append(decode(line))
                except ProtocolError:
                    continue
    except FileNotFoundError:
        pass
    return events


def follow_events(run_dir: str | Path, should_stop: Callable[[], bool], poll_s: float = 0.2) -> Iterator[dict]:
    """Yield every event of the run, old ones first, then new ones as they land."""
    path = Path(run_dir) / EVENTS_FILE
    while not path.exists():
        if should_stop():
            return
        time.sleep(poll_s)
    with open(path, encoding="utf-8") as f:
        partial = ""
        while not should_stop():
            line = f.readline()
            if not line:
                time.sleep(poll_s)
                continue
            partial += line
            if not partial.endswith("\n"):
                continue  # the writer is mid-line; wait for the rest
            try:
                yield decode(partial)
            except ProtocolError:
                pass
            partial = ""


@dataclass
class RunSummary:
    path: Path
    preset: str = "?"
    profile: str = ""
    status: str = "unknown"  # running | completed | stopped | error | crashed | empty
    step: int = 0
    max_steps: int = 0
    best_val_loss: float | None = None
    metrics: dict = field(default_factory=dict)
    started: float | None = None  # unix time
    name: str = ""  # labels.json: the user's name for the run, tags, notes
    tags: list[str] = field(default_factory=list)
    notes: str = ""

    @property
    def started_text(self) -> str:
        return datetime.fromtimestamp(self.started).strftime("%m-%d %H:%M") if self.started else "-"

    @property
    def metric_text(self) -> str:
        return headline_metric(self.metrics)


def headline_metric(metrics: dict) -> str:
    """The task's headline number (addition: held-out accuracy), e.g. "accuracy 0.9875"."""
    for key, value in metrics.items():
        return f"{key} {value:.4g}" if isinstance(value, (int, float)) else f"{key} {value}"
    return "-"


def summarize(run_dir: str | Path, events: list[dict] | None = None) -> RunSummary:
    run_dir = Path(run_dir)
    events = read_events(run_dir) if events is None else events
    config = read_json(run_dir / CONFIG_FILE)
    labels = read_labels(run_dir)
    s = RunSummary(path=run_dir, preset=config.get("preset", "?"), profile=config.get("profile", ""),
                   name=labels.get("name", ""), tags=list(labels.get("tags", [])), notes=labels.get("notes", ""))
    s.max_steps = config.get("train", {}).get("max_steps", 0)
    s.status = "empty" if not events else "crashed"
    for e in events:
        kind = e["event"]
        if kind == "run_started":
            s.started = s.started or e.get("t")
            s.max_steps = e["config"]["train"]["max_steps"]
            s.status = "crashed"  # until a run_finished says otherwise (a resume re-opens it)
        elif kind in ("step", "eval"):
            s.step = max(s.step, e["step"])
            if kind == "eval":
                if e["val_loss"] is not None and (s.best_val_loss is None or e["val_loss"] < s.best_val_loss):
                    s.best_val_loss = e["val_loss"]
                s.metrics = e.get("metrics") or s.metrics
        elif kind == "run_finished":
            s.status = {"completed": "completed", "stopped": "stopped"}.get(e["reason"], "error")
            s.step = max(s.step, e["step"])
            s.metrics = e.get("metrics") or s.metrics
            if e.get("best_val_loss") is not None:
                s.best_val_loss = e["best_val_loss"]
    if s.status == "crashed" and is_live(run_dir):
        s.status = "running"
    return s


def list_runs(root: str | Path | None = None) -> list[RunSummary]:
    root = Path(root) if root else runs_root()
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and is_run_dir(p)]
    summaries = [summarize(p) for p in dirs]
    return sorted(summaries, key=lambda s: s.started or 0, reverse=True)
