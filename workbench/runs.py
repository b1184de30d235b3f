"""The run directory (its layout: run_files.py): reading its events, listing runs.

Plain Python: the UI lists, replays and follows runs with it. Every reader here
takes whatever it finds: a run directory is written by a process that can be
killed mid-line, on a disk that can fill up, and edited by hand. A line that is
not an event is skipped (and counted), never raised.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

from .config import ConfigError
from .control import is_live
from .events import ProtocolError, decode
from .run_files import CONFIG_FILE, EVENTS_FILE, LABELS_FILE, read_json
from .run_state import RunState


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
    try:
        return (p / EVENTS_FILE).is_file() or (p / CONFIG_FILE).is_file()
    except OSError:  # e.g. a directory we may not enter
        return False


def require_run_dir(path: str | Path) -> Path:
    p = Path(path)
    if not is_run_dir(p):
        what = "does not exist" if not p.exists() else "is not a run directory (no events.jsonl or config.json)"
        raise ConfigError(f"{p} {what}.", "pass a directory made by `gptbench run`; `gptbench runs` lists them.")
    return p


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
        (Path(run_dir) / LABELS_FILE).write_text(
            json.dumps(labels, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )


def read_events(run_dir: str | Path) -> list[dict]:
    """All complete events so far (a torn last line from a live writer is skipped)."""
    return scan_events(run_dir)[0]


def scan_events(run_dir: str | Path) -> tuple[list[dict], int]:
    """All complete events so far, and how many lines were not events (garbage,
    a line cut short by a crash). A torn last line from a live writer is neither."""
    events: list[dict] = []
    damaged = 0
    try:
        # errors="replace": bytes that are not UTF-8 spoil their line, not the file
        with open(Path(run_dir) / EVENTS_FILE, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    events.append(decode(line))
                except ProtocolError:
                    damaged += line.endswith("\n")
    except OSError:  # no events yet, or none we may read
        pass
    return events, damaged


def damage_note(run_dir: Path, lines: int) -> str:
    """The one line a reader prints (to stderr) about a damaged events file."""
    return (
        f"note: {Path(run_dir) / EVENTS_FILE}: skipped {lines} damaged line{'s' if lines != 1 else ''} "
        "(cut short, or not an event)."
    )


def follow_lines(
    path: Path,
    should_stop: Callable[[], bool],
    writer_gone: Callable[[], bool] = lambda: False,
    poll_s: float = 0.2,
) -> Iterator[str]:
    """Yield every complete line of `path`, old ones first, then new ones as they
    land. Once `writer_gone()` says nobody will write any more, the rest of the
    file is read and the iteration ends. A last line without its newline is
    never yielded: it may be a live writer's, half written."""
    while not path.exists():
        if should_stop() or writer_gone():
            return
        time.sleep(poll_s)
    with open(path, encoding="utf-8", errors="replace") as f:
        partial = ""
        draining = False
        while not should_stop():
            line = f.readline()
            if not line:
                if draining:
                    break
                # Check, then read once more: the writer's last lines may land between the two.
                draining = writer_gone()
                if not draining:
                    time.sleep(poll_s)
                continue
            partial += line
            if partial.endswith("\n"):
                yield partial
                partial = ""
            # else: the writer is mid-line; wait for the rest


def follow_events(
    run_dir: str | Path,
    should_stop: Callable[[], bool],
    poll_s: float = 0.2,
    on_damaged: Callable[[str], None] = lambda line: None,
) -> Iterator[dict]:
    """Yield every event of the run, old ones first, then new ones as they land.
    A line that is not an event is skipped and handed to `on_damaged`."""
    for line in follow_lines(Path(run_dir) / EVENTS_FILE, should_stop, poll_s=poll_s):
        try:
            yield decode(line)
        except ProtocolError:
            on_damaged(line)


def trainer_running(run_dir: str | Path, state: RunState) -> bool:
    """Whether a trainer works on this run now: it listens on the control FIFO,
    or it is still starting up (the FIFO opens just before `run_started`) and
    the pid its `starting` status named is alive."""
    return is_live(run_dir) or pid_alive(state.starting_pid)


def pid_alive(pid) -> bool:
    """Whether that process still runs. A killed trainer whose parent died too stays a zombie until
    init reaps it; it runs no more, so it counts as gone (a sweep's re-run then resumes its trial)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # alive, but someone else's
        return True


@dataclass
class RunSummary:
    path: Path
    preset: str = "?"
    profile: str = ""
    status: str = "unknown"  # running | completed | stopped | error | crashed | empty
    step: int = 0
    max_steps: int = 0
    best_val_loss: float | None = None
    task_scores: dict = field(default_factory=dict)  # the eval task's own numbers
    started: float | None = None  # unix time
    damaged_lines: int = 0  # lines of events.jsonl that were not events, skipped
    name: str = ""  # labels.json: the user's name for the run, tags, notes
    tags: list[str] = field(default_factory=list)
    notes: str = ""

    @property
    def started_text(self) -> str:
        return datetime.fromtimestamp(self.started).strftime("%m-%d %H:%M") if self.started else "-"

    @property
    def metric_text(self) -> str:
        return headline_metric(self.task_scores)


def headline_metric(task_scores: dict) -> str:
    """The task's headline number (addition: held-out accuracy), e.g. "accuracy 0.9875"."""
    for key, value in task_scores.items():
        return f"{key} {value:.4g}" if isinstance(value, (int, float)) else f"{key} {value}"
    return "-"


def summarize(run_dir: str | Path, events: list[dict] | None = None) -> RunSummary:
    run_dir = Path(run_dir)
    damaged = 0
    if events is None:
        events, damaged = scan_events(run_dir)
    config = read_json(run_dir / CONFIG_FILE)
    labels = read_labels(run_dir)
    tags = labels.get("tags")
    state = RunState(run_dir)
    for e in events:
        state.apply(e)
    train = config.get("train")
    status = state.outcome
    if status == "crashed" and trainer_running(run_dir, state):
        status = "running"
    return RunSummary(
        path=run_dir,
        preset=str(config.get("preset", "?")),
        profile=str(config.get("profile", "")),
        name=str(labels.get("name", "")),
        tags=[str(t) for t in tags] if isinstance(tags, list) else [],
        notes=str(labels.get("notes", "")),
        status=status,
        step=state.step,
        max_steps=state.max_steps or (train.get("max_steps", 0) if isinstance(train, dict) else 0),
        best_val_loss=state.best_val_loss,
        task_scores=state.task_scores,
        started=state.first_started_t,
        damaged_lines=damaged + state.bad_events,
    )


def list_runs(root: str | Path | None = None) -> list[RunSummary]:
    root = Path(root) if root else runs_root()
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and is_run_dir(p)]
    summaries = [summarize(p) for p in dirs]
    return sorted(summaries, key=lambda s: s.started or 0, reverse=True)
