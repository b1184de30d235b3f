"""What a run directory holds: its files' names, and how to read its JSON files.

    RUN_DIR/
      config.json     the fully resolved config (preset, profile, model/data/train)
      meta.json       versions, git sha, device, seed, command line
      events.jsonl    every event, one JSON object per line (see events.py)
      tokenizer.json  how to rebuild the tokenizer (char vocab included)
      last.pt         the latest checkpoint (every train.ckpt_every steps and at the end)
      best.pt         the checkpoint with the best val loss so far
      control.fifo    present while a trainer listens for commands (see control.py)
      stderr.log      the trainer's stderr, once nobody reads its pipe (--detach, or its terminal closed)
      labels.json     the user's name, tags and notes for the run (--name, --tag, --notes)

A fact of the core that every layer reads, the data package included, so it
imports nothing of the project: listing and replaying runs is runs.py.
"""

from __future__ import annotations

import json
from pathlib import Path

EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.json"
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
LAST_CKPT = "last.pt"
BEST_CKPT = "best.pt"
STDERR_FILE = "stderr.log"
LABELS_FILE = "labels.json"


def read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} when there is none (missing, unreadable, not an object)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}
