"""Corpora: where a run's text comes from, as token ids split into train and val.

`data.path` is one of:
- empty: tiny Shakespeare, fetched once into the cache and sha256-checked;
- a UTF-8 text file, or a folder of .txt documents: tokenized once and cached as
  uint16 memmaps in `$XDG_CACHE_HOME/gptbench/tokens/<key>/`, where the key
  covers everything that changes the tokens (content, tokenizer, char
  vocabulary, val_fraction);
- a folder of token shards (see shards.py): llm.c `.bin` (what `gptbench data`
  writes), nanoGPT `train.bin`/`val.bin` (with `meta.pkl` for its char-level
  datasets), build-nanogpt `.npy`;
- the name of a prepared corpus (`fineweb-edu`): its shards in the cache dir,
  made by `gptbench data fineweb-edu`.

No torch here: the data-prep subprocess imports this module.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ConfigError, DataConfig
from ..run_files import read_json
from . import shards
from .tokenizers import CharTokenizer, GPT2Tokenizer, Tokenizer, gpt2_encode_file

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
CACHE_VERSION = 1  # bump when the token cache's layout changes
PREP_FILE = "prep.json"  # written by `gptbench data` into its output folder


# ----------------------------------------------------------------------------
# Where the data lives


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gptbench"


def shakespeare_path() -> Path:
    """Tiny Shakespeare (1,115,394 chars), downloaded and verified on first use."""
    return cached_file(
        "tinyshakespeare/input.txt",
        SHAKESPEARE_URL,
        SHAKESPEARE_SHA256,
        "place the file at {path} by hand, or train on your own text with --set data.path=FILE",
    )


def cached_file(name: str, url: str, sha256: str, hint: str) -> Path:
    """`name` in the cache dir, fetched from `url` and sha256-checked the first time it is needed.

    `hint` (with {path} for where the file goes) says what to do when it cannot be fetched.
    """
    path = cache_root() / name
    if not path.exists():
        download_verified(url, path, sha256, hint.format(path=path))
    return path


def download_verified(url: str, path: Path, sha256: str, hint: str) -> None:
    """Fetch `url` into `path`, refusing content whose sha256 is not the expected one."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            content = response.read()
    except OSError as e:  # URLError, timeouts and refused connections are all OSErrors
        raise ConfigError(f"Could not download {url} ({e}).", hint) from None
    if hashlib.sha256(content).hexdigest() != sha256:
        raise ConfigError(f"The file downloaded from {url} is not the expected one (sha256 mismatch).", hint)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename: an interrupted download never leaves
    # a half file that the next run would take for the real one.
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as f:
        f.write(content)
    os.replace(f.name, path)


# ----------------------------------------------------------------------------
# Corpora prepared by `gptbench data NAME` into the cache


@dataclass(frozen=True)
class NamedCorpus:
    source: str  # a Hugging Face dataset id
    name: str | None  # its configuration
    split: str
    text_field: str
    title: str
    cost: str  # what preparing it takes, for messages


NAMED = {
    # build-nanogpt's and llm.c's GPT-2 data: 10B GPT-2 tokens of educational web pages
    "fineweb-edu": NamedCorpus(
        "HuggingFaceFW/fineweb-edu",
        "sample-10BT",
        "train",
        "text",
        "FineWeb-Edu's 10B-token sample",
        "it streams ~10B tokens and writes 20 GB of shards: about an hour with 16 cores and a fast link",
    ),
}


def named_corpus_dir(name: str) -> Path:
    return cache_root() / name


# ----------------------------------------------------------------------------
# Corpora: token ids as uint16 arrays (memmaps), split into train and val


@dataclass
class Corpus:
    tokenizer: Tokenizer
    train: list[np.ndarray]  # one or more uint16 arrays, read as one sequence
    val: list[np.ndarray]
    source: str


def load_corpus(data: DataConfig) -> Corpus:
    path = Path(data.path).expanduser() if data.path else shakespeare_path()
    if not path.exists() and data.path in NAMED:
        path = _prepared(data.path)
    if not path.exists():
        raise ConfigError(
            f"Data path {path} does not exist.",
            "point data.path at a UTF-8 text file, a folder of .txt files or a folder of token shards: "
            "--set data.path=PATH",
        )
    if not path.is_dir():
        return _text_corpus([path], data, str(path))
    _refuse_unfinished_prep(path)
    found = shards.read_shard_folder(path)
    if found is not None:
        return _shard_corpus(path, *found, data)
    files = sorted(path.glob("*.txt"))
    if not files:
        raise ConfigError(
            f"{path} has no .txt files and no token shards.",
            "a data folder holds .txt documents, or train.bin/val.bin (nanoGPT), "
            "or llm.c .bin / build-nanogpt .npy shards",
        )
    return _text_corpus(files, data, str(path))


def _prepared(name: str) -> Path:
    """The folder of a named corpus, which must have been prepared in full."""
    folder = named_corpus_dir(name)
    if not _prep_state(folder).get("finished"):
        corpus = NAMED[name]
        raise ConfigError(
            f"data.path={name} is {corpus.title}, which is not prepared in {folder}.",
            f"prepare it once with `gptbench data {name}` ({corpus.cost}); or train on tiny Shakespeare "
            "(gpt2-124m: --set profile=shakespeare), or on your own data: --set data.path=PATH",
        )
    return folder


def _prep_state(folder: Path) -> dict:
    return read_json(folder / PREP_FILE)


def _refuse_unfinished_prep(folder: Path) -> None:
    state = _prep_state(folder)
    if state and not state.get("finished"):
        raise ConfigError(
            f"{folder} holds a `gptbench data` prep that has not finished "
            f"({len(state.get('shards', []))} shards written so far).",
            f"run `{state.get('command', 'gptbench data')}` again: it resumes where it stopped.",
        )


def _shard_corpus(folder: Path, train: list[np.ndarray], val: list[np.ndarray], kind: str, data: DataConfig) -> Corpus:
    meta = folder / shards.META_PKL
    if kind == "nanogpt" and meta.exists():  # nanoGPT's char-level datasets
        if data.tokenizer != "char":
            raise ConfigError(
                f"{folder} is a nanoGPT character-level dataset (it has meta.pkl), "
                f"but data.tokenizer={data.tokenizer}.",
                "read it with its own vocabulary: --set data.tokenizer=char",
            )
        tokenizer = CharTokenizer(shards.read_meta_pkl(meta))
        highest = max(int(a.max()) for a in train + val if len(a))
        if highest >= tokenizer.vocab_size:
            raise ConfigError(
                f"{folder} holds token id {highest}, outside the {tokenizer.vocab_size} characters of its meta.pkl.",
                "make train.bin, val.bin and meta.pkl again with the same prepare.py run.",
            )
        return Corpus(tokenizer, train, val, str(folder))
    if data.tokenizer != "gpt2":
        raise ConfigError(
            f"{folder} holds GPT-2 token shards, but data.tokenizer={data.tokenizer}.",
            "shards need the tokenizer they were made with: --set data.tokenizer=gpt2",
        )
    return Corpus(GPT2Tokenizer(), train, val, str(folder))


# --- text, tokenized once and cached


def _text_corpus(files: list[Path], data: DataConfig, source: str) -> Corpus:
    content = _fingerprint(files)
    if data.tokenizer == "gpt2":
        tokenizer, text = GPT2Tokenizer(), None
    else:  # char: the vocabulary is every character of the whole text, as in nanoGPT
        text = "\n".join(p.read_text(encoding="utf-8") for p in files)
        tokenizer = CharTokenizer.from_text(text)
        if tokenizer.vocab_size > 1 << 16:
            raise ConfigError(
                f"{source} has {tokenizer.vocab_size:,} distinct characters; the token cache holds ids below 65,536.",
                "use --set data.tokenizer=gpt2",
            )
    key = json.dumps([CACHE_VERSION, content, tokenizer.to_dict(), data.val_fraction])
    folder = cache_root() / "tokens" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if not (folder / "meta.json").exists():
        ids = _gpt2_encode_files(files) if text is None else np.array(tokenizer.encode(text), dtype=np.uint16)
        _write_split(folder, ids, data.val_fraction, {"source": source, "tokenizer": tokenizer.name})
    return Corpus(tokenizer, [shards.memmap(folder / "train.bin")], [shards.memmap(folder / "val.bin")], source)


def _fingerprint(files: list[Path]) -> str:
    """sha256 over the files' contents, checking on the way that they are UTF-8."""
    total = hashlib.sha256()
    for path in files:
        digest, decoder = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")()
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ConfigError(
                f"{path} is not UTF-8 text.",
                "convert it to UTF-8; token shards (.bin, .npy) are read from their folder: --set data.path=FOLDER",
            ) from None
        total.update(digest.digest())
    return total.hexdigest()


def _gpt2_encode_files(files: list[Path]) -> np.ndarray:
    """All documents' GPT-2 tokens, with <|endoftext|> between documents."""
    workers = min(len(files), os.cpu_count() or 1)
    if workers == 1:
        docs = [gpt2_encode_file(str(p)) for p in files]
    else:
        # BPE is the slow part of a new corpus: one document per task. spawn, not
        # fork: the parent may already hold CUDA or OpenMP threads, and the
        # workers only need the torch-free tokenizers module.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            docs = pool.map(gpt2_encode_file, [str(p) for p in files])
    eot = np.array([GPT2Tokenizer.eot], dtype=np.uint16)
    pieces = [piece for doc in docs for piece in (eot, doc)][1:]
    return np.concatenate(pieces)


def _write_split(folder: Path, ids: np.ndarray, val_fraction: float, meta: dict) -> None:
    """First (1 - val_fraction) of the tokens -> train.bin, the rest -> val.bin."""
    split = int(len(ids) * (1 - val_fraction))
    meta = {**meta, "train_tokens": split, "val_tokens": len(ids) - split, "val_fraction": val_fraction}
    # Build the whole folder under a temporary name and rename it into place:
    # readers see all three files or none, and when several processes (DDP
    # ranks) tokenize at once the first rename wins and the others' identical
    # copies are dropped.
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    ids[:split].tofile(tmp / "train.bin")
    ids[split:].tofile(tmp / "val.bin")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    try:
        os.rename(tmp, folder)
    except OSError:
        shutil.rmtree(tmp)
