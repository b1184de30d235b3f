"""`gptbench data SOURCE --out DIR`: turn a corpus into GPT-2 token shards.

The work runs in the prep subprocess (`python -m workbench.data.prepare`,
see there for the format and how resuming works); this module checks the
arguments, shows its progress (documents, tokens, tokens/s, ETA) with Rich and
says where the shards are and how to train on them.
"""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .. import units
from ..config import ConfigError
from ..data.corpus import NAMED, named_corpus_dir
from ..launcher import run_job
from .error_line import print_error

LOCAL_SUFFIXES = (".txt", ".jsonl", ".json", ".parquet")


def parse_count(option: str, text: str) -> int:
    """'100M', '1e8' or '100000000' -> 100000000 (for --shard-tokens, --val-tokens)."""
    scale = {"k": 10**3, "m": 10**6, "b": 10**9}.get(text.strip()[-1:].lower(), 1)
    digits = text.strip()[:-1] if scale > 1 else text.strip()
    try:
        value = float(digits) * scale
    except ValueError:
        value = 0
    if value < 1 or not value.is_integer():
        raise ConfigError(
            f"{option} must be a whole number of tokens, got {text!r}.", f"e.g. {option} 100M (or 1e8, 100000000)"
        )
    return int(value)


def prepare_data(
    source: str,
    out: Path | None,
    name: str | None,
    split: str,
    text_field: str,
    workers: int,
    shard_tokens: str,
    val_tokens: str | None,
) -> int:
    if source in NAMED:  # the shortcut: a known corpus, into the cache dir
        known, given = NAMED[source], source
        out = out or named_corpus_dir(given)
        source, name, split, text_field = known.source, known.name, known.split, known.text_field
        command = f"gptbench data {given}" + (
            f" --out {shlex.quote(str(out))}" if out != named_corpus_dir(given) else ""
        )
        train = (
            "gptbench run gpt2-124m --headless"
            if out == named_corpus_dir(given)
            else f"gptbench run gpt2-124m --headless --set data.path={out}"
        )
    else:
        if out is None:
            raise ConfigError(
                "--out is needed: where should the shards go?", f"e.g. gptbench data {source} --out data/shards"
            )
        if not Path(source).expanduser().exists() and source.lower().endswith(LOCAL_SUFFIXES):
            raise ConfigError(
                f"{source} does not exist.",
                "give a local .txt/.jsonl/.json/.parquet file or folder, or a Hugging Face dataset id.",
            )
        options = [
            source,
            "--out",
            str(out),
            *(["--name", name] if name else []),
            "--split",
            split,
            "--text-field",
            text_field,
            "--shard-tokens",
            shard_tokens,
            *(["--val-tokens", val_tokens] if val_tokens else []),
        ]
        command = "gptbench data " + shlex.join(options)
        train = f"gptbench run gpt2-124m --headless --set data.path={out}"
    if workers < 0:
        raise ConfigError(f"--workers must be 0 (all cores) or more, got {workers}.", "e.g. --workers 8")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file.", "give a folder (it is created if needed).")
    shards = parse_count("--shard-tokens", shard_tokens)
    val = parse_count("--val-tokens", val_tokens) if val_tokens else None  # None: the prep's default
    args = [
        source,
        "--out",
        str(out),
        "--split",
        split,
        "--text-field",
        text_field,
        "--workers",
        str(workers),
        "--shard-tokens",
        str(shards),
        *(["--val-tokens", str(val)] if val is not None else []),
        "--command",
        command,
        *(["--name", name] if name else []),
    ]
    return _run(args, out, train)


def _run(args: list[str], out: Path, train: str) -> int:
    console = Console(highlight=False)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[docs]} docs"),
        TextColumn("{task.fields[tokens]} tokens"),
        TextColumn("{task.fields[rate]} tok/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    bar = progress.add_task(
        "tokenizing", total=None, docs="0", tokens="0", rate="-", visible=False
    )  # until work starts
    outcome: dict = {}

    def on_event(e: dict) -> None:
        kind = e["event"]
        if kind == "progress":
            progress.update(
                bar,
                visible=True,
                completed=e["done"],
                total=e["total"],
                docs=units.count(e["done"]),
                tokens=units.count(e["tokens"]),
                rate=units.count(e["tokens_per_sec"]),
            )
        elif kind == "log":
            progress.console.print(escape(e["message"]), soft_wrap=True)
            if "tokens_per_sec" in e or e.get("already"):
                outcome["done"] = e

    argv = [sys.executable, "-m", "workbench.data.prepare", *args]
    previous = signal.signal(signal.SIGINT, lambda *_: None)  # Ctrl-C reaches the prep too: it stops by itself
    try:
        with progress:
            job = run_job(argv, on_event, out)
    finally:
        signal.signal(signal.SIGINT, previous)
    code = job.code
    if job.error and job.error["kind"] == "stopped":  # the shards so far are kept: not a mistake
        console.print(escape(job.error["message"]), soft_wrap=True)
        return code
    if job.error:
        print_error(console, job.error["message"], job.error["hint"])
        if job.error["kind"] == "internal":  # a bug: the traceback
            console.print(escape("\n".join(job.stderr_tail[-15:])), soft_wrap=True)
        return job.code or 2
    if "done" in outcome:
        console.print(f"shards in {escape(str(out))}; train on them: {escape(train)}", soft_wrap=True)
    elif code not in (0, 130):
        console.print(f"[red bold]error:[/] the data prep exited with code {code}.", soft_wrap=True)
        console.print(escape("\n".join(job.stderr_tail[-15:])), soft_wrap=True)
    return code
