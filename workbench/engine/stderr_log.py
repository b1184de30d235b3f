"""The trainer's stderr once nobody reads it: RUN_DIR/stderr.log.

Whoever reads the trainer's pipes may go away while it trains: a dropped SSH
session takes the headless command with it, `| head` closes its output, the
app quits and leaves the run going. Python ignores SIGPIPE, so a write to a
pipe nobody reads raises BrokenPipeError: from a print, a traceback, a logging
record, anywhere in the run. Events survive that in EventLog (the file has
them all); stderr survives it here.
"""

from __future__ import annotations

import os
from pathlib import Path


class StderrOutlivingItsReader:
    """sys.stderr (and sys.stdout) of the trainer: the launcher's pipe while
    somebody reads it, the log file once nobody does.

    The first write that fails moves fds 1 and 2 onto the log file (torch's C++
    messages, written to the fds directly, follow) and is written again there.
    """

    def __init__(self, stream, log_path: Path):
        self._stream = stream
        self._log_path = log_path

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            self._move_to_log()
            return self._stream.write(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._move_to_log()

    def _move_to_log(self) -> None:
        try:
            fd = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:  # the run directory is not there (yet): nowhere better to write
            fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)  # fileno, isatty, encoding, ... of the stream underneath
