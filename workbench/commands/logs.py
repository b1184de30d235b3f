"""`gptbench logs RUN_DIR [-f]`: a run's log lines, read from its events.jsonl.

The lines are those `run --headless` prints (the same HeadlessView), so a run
started with `--detach`, or one whose terminal closed under it, reads the same
afterwards. With -f it follows the run live until its `run_finished`, or until
its trainer is gone (killed, crashed) without one.

A damaged line (cut short by a crash, garbage) is skipped and counted, never fatal.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..events import ProtocolError, decode
from ..run_files import EVENTS_FILE, STDERR_FILE
from ..runs import damage_note, follow_lines, require_run_dir, trainer_running
from .run import HeadlessView, ViewConsole

# A followed run's exit code, like the trainer's own (engine/worker.py).
EXIT_CODES = {"completed": 0, "stopped": 130}


def logs(run_dir: Path, follow: bool) -> int:
    run_dir = require_run_dir(run_dir)
    console = ViewConsole(highlight=False)
    view = HeadlessView(console, as_json=False)
    damaged = 0

    def finished() -> bool:
        """The run's last start (a resume starts it again) has its run_finished."""
        return view.state.finished is not None

    def writer_gone() -> bool:
        return not follow or finished() or not trainer_running(run_dir, view.state)

    for line in follow_lines(run_dir / EVENTS_FILE, should_stop=lambda: view.output_closed, writer_gone=writer_gone):
        try:
            shown = view.on_event(decode(line))
        except (ProtocolError, KeyError, TypeError, ValueError, AttributeError):  # not an event, or a bad line
            shown = False
        damaged += not shown

    if damaged:
        print(damage_note(run_dir, damaged), file=sys.stderr)
    if view.output_closed:
        return 0
    if not finished():
        if trainer_running(run_dir, view.state):
            console.print(
                f"[dim]still running: `gptbench logs -f {escape(str(run_dir))}` follows it[/]", highlight=False
            )
        else:
            _print_gone(console, run_dir)
            return 1 if follow else 0
    return EXIT_CODES.get(view.state.finished["reason"], 1) if follow else 0


def _print_gone(console: Console, run_dir: Path) -> None:
    stderr_log = run_dir / STDERR_FILE
    console.print(
        "[red bold]the trainer is gone without finishing[/] (killed, or crashed)\n"
        f"  [yellow]hint:[/] `gptbench run --headless --resume {escape(str(run_dir))}` continues from last.pt"
        + (f"; the trainer's messages are in {escape(str(stderr_log))}" if _has_text(stderr_log) else ""),
        highlight=False,
        soft_wrap=True,
    )


def _has_text(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False
