"""The frame every engine process runs in: how it writes events, and how it fails.

The processes the CLI and the app start (the trainer, the evaluator, the
exporter, the checkpoint sampler, corpus preparation) talk one way: one event
per line on stdout (`EventWriter`), and a failure ends in one `error` event and
an exit code, both from one table (FAILURES). The parent side of the same
frame is launcher.py (`EngineProcess`, `run_job`).

Plain Python: data/ uses it too, so it imports neither torch nor the engine,
and the table names the engine's exceptions by their class names.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from .events import encode, make

EXIT_CODES = {"completed": 0, "error": 1, "bad input": 2, "stopped": 130, "pruned": 130}


class EventWriter:
    """Events on a stream, one line each, flushed at once: a reader never waits on a buffer.

    A reader that went away (a closed pipe) is dropped, and the work goes on: whatever
    it writes to disk (events.jsonl, shards, an export) is what counts.
    """

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream if stream is not None else sys.stdout

    def emit(self, event: str, **fields: Any) -> dict:
        evt = make(event, **fields)
        self.write(encode(evt) + "\n")
        return evt

    def write(self, line: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(line)
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            self.stream = None


@dataclass(frozen=True)
class Failure:
    """How an exception ends an engine process: the error event's kind and the exit code.

    message and hint: said when the exception has none of its own (a ConfigError
    carries both; the engine's NonFiniteLoss and CheckpointWriteError a hint).
    """

    kind: str
    code: int
    message: str = ""
    hint: str = ""


BAD_INPUT = "bad input"  # the kind each process gives its bad input: config, checkpoint, export, data

# exception class name (the first match along its MRO) -> how the process ends
FAILURES: dict[str, Failure] = {
    "ConfigError": Failure(BAD_INPUT, EXIT_CODES["bad input"]),  # a config, data, checkpoint, prompt, ...
    "CheckpointWriteError": Failure("disk", EXIT_CODES["error"]),
    "NonFiniteLoss": Failure("nan", EXIT_CODES["error"]),
    "OutOfMemoryError": Failure(
        "oom",
        EXIT_CODES["error"],
        "The GPU ran out of memory.",
        "lower train.batch_size, or set it to auto (tokens_per_step keeps the step size through "
        "gradient accumulation); last.pt still holds the last good weights.",
    ),
    "KeyboardInterrupt": Failure("stopped", EXIT_CODES["stopped"], "Stopped."),
    "Exception": Failure("internal", EXIT_CODES["error"], hint="this is a gptbench bug; the traceback is on stderr."),
}


@dataclass(frozen=True)
class Failed:
    """One failure as the process reports it: the `error` event's fields and the exit code."""

    kind: str
    message: str
    hint: str
    code: int

    def fields(self) -> dict:
        return {"kind": self.kind, "message": self.message, "hint": self.hint}


def failed(exc: Exception | KeyboardInterrupt, bad_input: str = "config") -> Failed:
    """What `exc` means for the process (FAILURES); bad_input: the kind its ConfigErrors get."""
    failure = next(FAILURES[c.__name__] for c in type(exc).__mro__ if c.__name__ in FAILURES)
    kind = bad_input if failure.kind == BAD_INPUT else failure.kind
    if failure.kind == "internal":  # a bug: keep the traceback on stderr, one sentence in the events
        traceback.print_exception(exc)
        message = f"{type(exc).__name__}: {exc}"
    else:
        message = getattr(exc, "message", None) or failure.message or str(exc)
    return Failed(kind, message, getattr(exc, "hint", None) or failure.hint, failure.code)


def run_process(work: Callable[[EventWriter], None], bad_input: str, stopped: str = "") -> int:
    """Run an engine process's work with its events on stdout; a failure is one `error` event.

    Returns the exit code: 0 when the work is done, else the failure's (FAILURES). bad_input: the kind
    its ConfigErrors get; stopped: what it says when Ctrl-C stops it (corpus preparation keeps its shards).
    """
    events = EventWriter()
    try:
        work(events)
        return EXIT_CODES["completed"]
    except (Exception, KeyboardInterrupt) as exc:
        failure = failed(exc, bad_input)
        message = stopped if failure.kind == "stopped" and stopped else failure.message
        events.emit("error", kind=failure.kind, message=message, hint=failure.hint)
        return failure.code
