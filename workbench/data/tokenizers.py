"""Tokenizers: text <-> token ids for the three kinds of data.

- `digits`: the adder's ten digit tokens (minGPT).
- `char`:   one token per character of the training text (nanoGPT's shakespeare_char).
- `gpt2`:   GPT-2's byte-pair encoding via tiktoken, built offline from the ranks
            vendored in `workbench/assets/gpt2.tiktoken`.

Every tokenizer has `name`, `vocab_size`, `encode`, `decode` and `save(run_dir)`;
`save` writes `tokenizer.json` into the run directory and `load_tokenizer` rebuilds
the same tokenizer from it, so a run can be sampled without its training data.

No torch here: the UI and the data workers that tokenize files import this module,
and they should start in milliseconds.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import tiktoken
import tiktoken.load
from tiktoken_ext.openai_public import r50k_pat_str

from ..config import ConfigError
from ..run_files import TOKENIZER_FILE

GPT2_RANKS = Path(__file__).resolve().parents[1] / "assets" / "gpt2.tiktoken"
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
EOT = "<|endoftext|>"


class PromptError(ConfigError):
    """Text the model cannot read (a character outside its vocabulary, a malformed sum)."""


class Tokenizer:
    name: str
    vocab_size: int
    start_id: int  # what a sample with an empty prompt starts from

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"kind": self.name}

    def save(self, run_dir: str | Path) -> None:
        path = Path(run_dir) / TOKENIZER_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader never sees half a file


class DigitTokenizer(Tokenizer):
    """Token i is the digit i: the adder reads and writes numbers digit by digit."""

    name = "digits"
    vocab_size = 10
    start_id = 0

    def encode(self, text: str) -> list[int]:
        bad = sorted({c for c in text if c not in "0123456789"})
        if bad:
            raise PromptError(
                f"The prompt has characters that are not digits: {', '.join(map(repr, bad))}.",
                "the vocabulary is the ten digits 0-9.",
            )
        return [int(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(str(i) for i in ids)


class CharTokenizer(Tokenizer):
    """One token per distinct character of the training text, in sorted order."""

    name = "char"

    def __init__(self, chars: str):
        self.chars = chars
        self.vocab_size = len(chars)
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.start_id = self.stoi.get("\n", 0)  # nanoGPT samples from a newline

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            pass  # rare, so find every missing character only now, for the message
        missing = list(dict.fromkeys(c for c in text if c not in self.stoi))
        raise PromptError(
            f"The prompt has characters the model never saw: {', '.join(map(repr, missing))}.",
            f"the vocabulary has {self.vocab_size} characters: {describe_chars(self.chars)}",
        )

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_dict(self) -> dict:
        return {"kind": self.name, "chars": self.chars}


class GPT2Tokenizer(Tokenizer):
    """GPT-2's BPE: 50,256 merges plus <|endoftext|> (50256), which encode accepts."""

    name = "gpt2"
    vocab_size = 50257
    eot = start_id = 50256

    def __init__(self):
        self.encoding = _gpt2_encoding()

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode(text, allowed_special={EOT})

    def decode(self, ids: list[int]) -> str:
        return self.encoding.decode(ids)


@functools.lru_cache(maxsize=1)
def _gpt2_encoding() -> tiktoken.Encoding:
    # tiktoken.get_encoding("gpt2") would download the ranks; the vendored copy
    # (checked against its hash) keeps training and tests offline.
    ranks = tiktoken.load.load_tiktoken_bpe(str(GPT2_RANKS), expected_hash=GPT2_RANKS_SHA256)
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={EOT: GPT2Tokenizer.eot},
        explicit_n_vocab=GPT2Tokenizer.vocab_size,
    )


def gpt2_encode_file(path: str) -> np.ndarray:
    """One document's GPT-2 tokens as uint16 (all ids are < 2**16).

    A module function so that multiprocessing workers can run it: they import
    this torch-free module only, and build the encoding once per worker.
    """
    text = Path(path).read_text(encoding="utf-8")
    return np.array(GPT2Tokenizer().encode(text), dtype=np.uint16)


def from_dict(d: dict) -> Tokenizer:
    kind = d.get("kind")
    if kind == "digits":
        return DigitTokenizer()
    if kind == "char":
        return CharTokenizer(d["chars"])
    if kind == "gpt2":
        return GPT2Tokenizer()
    raise ConfigError(f"Unknown tokenizer kind {kind!r} in {TOKENIZER_FILE}.", "the kinds are digits, char and gpt2.")


def load_tokenizer(run_dir: str | Path) -> Tokenizer:
    """The tokenizer a run trained with, from the `tokenizer.json` in its run directory."""
    path = Path(run_dir) / TOKENIZER_FILE
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist.", "is this a gptbench run directory? Runs write it when training starts."
        ) from None
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{path} could not be read ({e}).", "the run directory may be damaged; start a new run."
        ) from None
    return from_dict(d)


_NAMED = {"\n": "newline", " ": "space", "\t": "tab"}
_RANGES = ("AZ", "az", "09")


def describe_chars(chars: str, limit: int = 40) -> str:
    """A short human summary of a character set, e.g. 'newline, space, A-Z, a-z, 3, !$&'.

    Whole ranges collapse to 'A-Z'; the rest is listed as is (cut after `limit`).
    """
    parts = [_NAMED[c] for c in chars if c in _NAMED]
    for lo, hi in _RANGES:
        members = "".join(c for c in chars if lo <= c <= hi)
        if members:
            parts.append(f"{lo}-{hi}" if len(members) == ord(hi) - ord(lo) + 1 else members)
    others = "".join(c for c in chars if c not in _NAMED and not any(lo <= c <= hi for lo, hi in _RANGES))
    if others:
        parts.append(others if len(others) <= limit else others[:limit] + "...")
    return ", ".join(parts)
