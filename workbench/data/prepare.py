"""Data prep: a corpus -> GPT-2 token shards that gptbench and llm.c train on.

    python -m workbench.data.prepare SOURCE --out DIR [--name N] [--split S]
        [--text-field F] [--workers W] [--shard-tokens N] [--val-tokens N]

`gptbench data` runs this as a subprocess (the `datasets` library imports torch
once it streams, and the CLI never does) and shows its events: `progress`,
`log`, `error`.

Reading: SOURCE is a Hugging Face dataset id, streamed (nothing is downloaded
in full first), or local files read by the same library: .txt (one document
per file), .jsonl/.json (one per line), .parquet (one per row), or a folder of
one of these kinds.

Tokenizing: a document becomes <|endoftext|> followed by its GPT-2 tokens (the
layout of llm.c's and build-nanogpt's fineweb.py: the EOT token delimits
documents), encoded in order by a pool of --workers processes.

Writing: llm.c shards (header + uint16): first val_000000.bin with
--val-tokens tokens, then train_000001.bin, ... of --shard-tokens, the last
one shorter. Without --val-tokens, a source smaller than the val shard's
default size gets a tenth of its tokens as val and the rest as train. Each
is written to a temporary file and renamed. After each,
prep.json records how far the stream got: the documents consumed, how many
tokens of the next one the shard already took, and the `datasets` stream's own
state, so an interrupted prep resumes where its last shard ended, and a
finished one is not redone.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..process_frame import run_process
from .corpus import PREP_FILE
from .shards import write_llmc
from .tokenizers import GPT2Tokenizer

STATE_VERSION = 1
FORMATS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
SNAPSHOT_EVERY = 64  # documents between two saved stream states: a resume re-reads fewer than this
PROGRESS_EVERY_S = 0.5

Emit = Callable[..., None]


@dataclass(frozen=True)
class Settings:
    """Everything that decides the shards' contents: a resume must use the same."""

    source: str
    name: str | None = None
    split: str = "train"
    text_field: str = "text"
    shard_tokens: int = 100_000_000
    val_tokens: int = 100_000_000
    tokenizer: str = "gpt2"


# ----------------------------------------------------------------------------
# Reading documents through `datasets`


def local_files(source: Path) -> tuple[str, list[Path]]:
    """(datasets builder, files) for a local file or folder."""
    files = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.is_file() and _format(p))
    formats = {_format(p) for p in files}
    if None in formats or not formats:
        raise ConfigError(
            f"{source} holds no .txt, .jsonl, .json or .parquet files.",
            "give a file or folder of those (compressed .gz/.zst too), or a Hugging Face dataset id.",
        )
    if len(formats) > 1:
        raise ConfigError(
            f"{source} mixes {', '.join(sorted(formats))} files.", "put one kind of file in a folder, or give one file."
        )
    return formats.pop(), files


def _format(path: Path) -> str | None:
    name = path.name.lower()
    for compression in COMPRESSIONS:
        name = name.removesuffix(compression)
    return FORMATS.get(Path(name).suffix)


def open_stream(settings: Settings):
    """The source as a streaming `datasets.IterableDataset` of records."""
    from datasets import load_dataset  # heavy, and only needed here

    source = Path(settings.source).expanduser()
    if source.exists():
        builder, files = local_files(source)
        options = {"sample_by": "document"} if builder == "text" else {}
        return load_dataset(builder, data_files=[str(p) for p in files], split="train", streaming=True, **options)
    try:
        return load_dataset(settings.source, name=settings.name, split=settings.split, streaming=True)
    except Exception as exc:  # not found, offline, no such config or split: datasets raises many kinds
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"Could not open {settings.source} as a Hugging Face dataset ({first_line}).",
            "check the id, --name and --split, and the connection; "
            "local files (txt, jsonl, parquet, a folder) work offline.",
        ) from None


def count_documents(settings: Settings, stream) -> int | None:
    """How many documents the source has, when that is cheap to know (for the ETA)."""
    source = Path(settings.source).expanduser()
    if not source.exists():
        splits = getattr(stream.info, "splits", None) or {}
        split = splits.get(settings.split)
        return split.num_examples if split and split.num_examples else None
    builder, files = local_files(source)
    if builder == "text":
        return len(files)
    if any(p.name.lower().endswith(COMPRESSIONS) for p in files):
        return None  # compressed: counting would mean decompressing
    if builder == "parquet":
        import pyarrow.parquet as pq

        return sum(pq.read_metadata(p).num_rows for p in files)
    return sum(_count_lines(p) for p in files) if all(p.suffix.lower() == ".jsonl" for p in files) else None


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))


def documents(stream, field: str, start: int, snapshots: dict, lock: threading.Lock) -> Iterator[str]:
    """The texts, and every SNAPSHOT_EVERY documents the stream's state (keyed by documents consumed)."""
    for consumed, record in enumerate(stream, start + 1):
        text = record.get(field)
        if not isinstance(text, str):
            fields = ", ".join(sorted(record))
            raise ConfigError(
                f"A record of the source has no text field {field!r} (its fields: {fields}).",
                "name the field that holds the text: --text-field NAME",
            )
        if consumed % SNAPSHOT_EVERY == 0:
            with lock:
                snapshots[consumed] = stream.state_dict()
        yield text


# ----------------------------------------------------------------------------
# Tokenizing


def encode_document(text: str) -> np.ndarray:
    """<|endoftext|> then the document's tokens. Special-token text inside a document stays text."""
    return np.array([GPT2Tokenizer.eot, *GPT2Tokenizer().encoding.encode_ordinary(text)], dtype=np.uint16)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle, once


@contextmanager
def tokenizer_pool(workers: int):
    """A function mapping texts to token arrays, in order, on `workers` processes."""
    if workers <= 1:
        yield lambda texts: map(encode_document, texts)
        return
    # spawn: the workers import only this torch-free module and the tokenizer.
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_ignore_sigint) as pool:
        yield lambda texts: pool.imap(encode_document, texts, chunksize=16)


# ----------------------------------------------------------------------------
# Writing shards, with the state that makes a prep resumable


class ShardWriter:
    """Fills shards with documents' tokens; saves the state after every shard."""

    def __init__(
        self,
        out: Path,
        state: dict,
        snapshots: dict,
        lock: threading.Lock,
        emit: Emit,
        total_docs: int | None,
        val_given: bool = True,
    ):
        self.out, self.state, self.snapshots, self.lock, self.emit = out, state, snapshots, lock, emit
        self.val_given = val_given  # --val-tokens was given (else a small source gets a tenth as val)
        self.settings = Settings(**state["settings"])
        self.docs = state["docs_done"]  # documents started so far
        self.first_offset = state["doc_offset"]  # the first document's tokens already in an earlier shard
        self.total_docs = total_docs
        self.start_time = time.time()
        self.session_tokens = 0
        self.last_progress = 0.0
        self._new_buffer()

    def _new_buffer(self) -> None:
        index = len(self.state["shards"])
        self.buffer = np.empty(self.settings.val_tokens if index == 0 else self.settings.shard_tokens, dtype=np.uint16)
        self.fill = 0

    def add(self, tokens: np.ndarray) -> None:
        self.docs += 1
        offset, self.first_offset = self.first_offset, 0
        tokens = tokens[offset:]
        self.session_tokens += len(tokens)
        pos = 0
        while pos < len(tokens):
            take = min(len(self.buffer) - self.fill, len(tokens) - pos)
            self.buffer[self.fill : self.fill + take] = tokens[pos : pos + take]
            self.fill, pos = self.fill + take, pos + take
            if self.fill == len(self.buffer):
                whole = pos == len(tokens)  # did the shard end with the document?
                self._write(docs_done=self.docs if whole else self.docs - 1, doc_offset=0 if whole else offset + pos)
        if time.time() - self.last_progress > PROGRESS_EVERY_S:
            self.progress()

    def finish(self) -> None:
        tokens = self.state["tokens"] + self.fill
        if not self.state["shards"] and not self.val_given and tokens >= 2:
            self._split_small_source(tokens)
        if not self.state["shards"]:
            suggestion = max(1, tokens // 10)
            raise ConfigError(
                f"The source has {tokens:,} tokens, "
                f"fewer than the {self.settings.val_tokens:,} of the val shard (--val-tokens).",
                f"give the val shard a tenth: --val-tokens {suggestion} (the rest becomes the train shards).",
            )
        if self.fill:
            self._write(docs_done=self.docs, doc_offset=0)
        if len(self.state["shards"]) == 1:
            raise ConfigError(
                f"All {tokens:,} tokens of the source went into the val shard: nothing is left to train on.",
                f"delete {self.out} and run again with a smaller --val-tokens, e.g. {max(1, tokens // 10)}.",
            )
        self.state["finished"] = True
        save_state(self.out, self.state)
        self.progress()

    def _split_small_source(self, tokens: int) -> None:
        """The whole source fits in the default val shard: a tenth of it is val, the rest train."""
        val = max(1, tokens // 10)
        self.emit(
            "log",
            message=f"the source has {tokens:,} tokens, fewer than the {self.settings.val_tokens:,} of a val shard: "
            f"val gets a tenth ({val:,}), train the rest (--val-tokens sets it)",
        )
        source = self.buffer[: self.fill].copy()
        self.buffer, self.fill = source[:val], val
        # Both shards are written together, at the end: a prep stopped before has written nothing to resume.
        self._write(docs_done=self.docs, doc_offset=0)
        self.buffer, self.fill = source[val:], tokens - val

    def progress(self) -> None:
        self.last_progress = time.time()
        elapsed = self.last_progress - self.start_time
        self.emit(
            "progress",
            stage="tokenizing",
            done=self.docs,
            total=self.total_docs,
            tokens=self.state["tokens"] + self.fill,
            shards=len(self.state["shards"]),
            elapsed_s=elapsed,
            tokens_per_sec=self.session_tokens / max(elapsed, 1e-9),
        )

    def _write(self, docs_done: int, doc_offset: int) -> None:
        index = len(self.state["shards"])
        name = f"{'val' if index == 0 else 'train'}_{index:06d}.bin"
        write_llmc(self.out / name, self.buffer[: self.fill])
        with self.lock:  # the nearest saved stream state at or before docs_done; older ones are not needed again
            at = max((k for k in self.snapshots if k <= docs_done), default=None)
            if at is not None:
                self.state["stream"] = {"docs": at, "state": self.snapshots[at]}
                for k in [k for k in self.snapshots if k < at]:
                    del self.snapshots[k]
        self.state["shards"].append({"file": name, "tokens": int(self.fill)})
        self.state.update(docs_done=docs_done, doc_offset=doc_offset, tokens=self.state["tokens"] + self.fill)
        save_state(self.out, self.state)
        self._new_buffer()


def load_state(out: Path, settings: Settings, command: str) -> dict:
    """The prep's state in `out`: a new one, or the one to resume (with the same settings)."""
    fresh = {
        "version": STATE_VERSION,
        "command": command,
        "settings": asdict(settings),
        "shards": [],
        "docs_done": 0,
        "doc_offset": 0,
        "tokens": 0,
        "stream": None,
        "finished": False,
    }
    try:
        state = json.loads((out / PREP_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return fresh
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{out / PREP_FILE} could not be read ({exc}).", f"delete {out} and prepare again.") from None
    if state.get("version") != STATE_VERSION:
        raise ConfigError(f"{out} holds a prep of another gptbench version.", f"delete {out} and prepare again.")
    if not state["shards"]:
        return fresh  # nothing written yet: start over, whatever the settings were
    if state["settings"] != asdict(settings):
        changed = ", ".join(f"{k}={v!r}" for k, v in state["settings"].items() if asdict(settings)[k] != v)
        raise ConfigError(
            f"{out} holds a prep made with other settings ({changed}).",
            f"use another --out, or delete {out} to start over with the new settings.",
        )
    return state


def save_state(out: Path, state: dict) -> None:
    tmp = out / (PREP_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(tmp, out / PREP_FILE)


def prepare(settings: Settings, out: Path, workers: int, emit: Emit, command: str, val_given: bool = True) -> dict:
    """Prepare (or finish preparing) the shards of `settings.source` in `out`. Returns the final state.

    `val_given`: settings.val_tokens was asked for; if not, a source smaller than it gets a tenth as val."""
    out.mkdir(parents=True, exist_ok=True)
    state = load_state(out, settings, command)
    if state["finished"]:
        emit(
            "log",
            message=f"{out} is already prepared: {state['tokens']:,} tokens in {len(state['shards'])} shards.",
            already=True,
        )
        return state
    for leftover in out.glob("*.tmp"):  # a shard whose write was interrupted
        leftover.unlink()
    save_state(out, state)  # from now on the folder says it is an unfinished prep
    stream = open_stream(settings)
    resumed_at = state["stream"]["docs"] if state["stream"] else 0
    if state["stream"]:
        stream.load_state_dict(state["stream"]["state"])
    if state["docs_done"]:
        emit("log", message=f"resuming after {len(state['shards'])} shards ({state['docs_done']:,} documents)")
    snapshots, lock = {}, threading.Lock()
    writer = ShardWriter(out, state, snapshots, lock, emit, count_documents(settings, stream), val_given)
    texts = itertools.islice(
        documents(stream, settings.text_field, resumed_at, snapshots, lock), state["docs_done"] - resumed_at, None
    )
    with tokenizer_pool(workers) as tokenize:
        for tokens in tokenize(texts):
            writer.add(tokens)
    writer.finish()
    seconds = time.time() - writer.start_time
    emit(
        "log",
        message=f"prepared {state['tokens']:,} tokens in {len(state['shards'])} shards in {seconds:.1f}s "
        f"({writer.session_tokens / max(seconds, 1e-9):,.0f} tokens/s)",
        tokens=state["tokens"],
        shards=len(state["shards"]),
        seconds=seconds,
        tokens_per_sec=writer.session_tokens / max(seconds, 1e-9),
    )
    return state


# ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m workbench.data.prepare", description="Corpus -> GPT-2 token shards; events on stdout."
    )
    p.add_argument("source")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--name", default=None)
    p.add_argument("--split", default="train")
    p.add_argument("--text-field", default="text")
    p.add_argument("--workers", type=int, default=0, help="tokenizer processes (0: all cores)")
    p.add_argument("--shard-tokens", type=int, default=100_000_000)
    p.add_argument(
        "--val-tokens", type=int, default=None, help="default: --shard-tokens, or a tenth of a smaller source"
    )
    p.add_argument("--command", default="", help="the command line to repeat to resume, for messages")
    args = p.parse_args(argv)

    settings = Settings(
        args.source, args.name, args.split, args.text_field, args.shard_tokens, args.val_tokens or args.shard_tokens
    )
    command = args.command or f"python -m workbench.data.prepare {' '.join(sys.argv[1:])}"
    workers = args.workers or os.cpu_count() or 1

    def work(events) -> None:
        prepare(settings, args.out, workers, events.emit, command, args.val_tokens is not None)

    return run_process(
        work,
        bad_input="data",
        stopped="Stopped; the shards written so far are kept, and the same command resumes after them.",
    )


if __name__ == "__main__":
    sys.exit(main())
