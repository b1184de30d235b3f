"""Token shards on disk: the formats other tools write, and the one we write.

- llm.c: `.bin` files with a header of 256 int32 (magic 20240520, version 1,
  token count) and then the tokens as uint16. `gptbench data` writes these, so
  llm.c can train on our shards and we on its.
- nanoGPT: `train.bin` and `val.bin`, raw uint16 with no header; with a
  `meta.pkl` beside them (its char-level datasets) the ids are characters.
- build-nanogpt: `.npy` uint16 arrays.

In a folder of llm.c or .npy shards, "val" in a file's name puts it in the val
split. No torch here: the data-prep workers and the CLI import this module.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from ..config import ConfigError

LLMC_MAGIC, LLMC_VERSION, LLMC_HEADER_INTS = 20240520, 1, 256
META_PKL = "meta.pkl"


def memmap(path: Path, offset: int = 0, count: int | None = None) -> np.ndarray:
    """`count` uint16 tokens of `path` from byte `offset` (all of them when None), mapped, not read."""
    available = (path.stat().st_size - offset) // 2
    count = available if count is None else count
    if count > available:
        raise ConfigError(
            f"{path} is truncated: its header promises {count:,} tokens but it holds {available:,}.",
            "make or download the shard again.",
        )
    if count == 0:
        return np.zeros(0, dtype=np.uint16)  # np.memmap cannot map zero bytes
    return np.memmap(path, dtype=np.uint16, mode="r", offset=offset, shape=(count,))


# ----------------------------------------------------------------------------
# llm.c


def write_llmc(path: Path, tokens: np.ndarray) -> None:
    """Write one llm.c shard atomically: a reader sees the whole file or none."""
    header = np.zeros(LLMC_HEADER_INTS, dtype=np.int32)
    header[:3] = [LLMC_MAGIC, LLMC_VERSION, len(tokens)]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype=np.uint16).tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def has_llmc_header(path: Path) -> bool:
    return np.fromfile(path, dtype=np.int32, count=1).tolist() == [LLMC_MAGIC]


def open_llmc(path: Path) -> np.ndarray:
    header = np.fromfile(path, dtype=np.int32, count=LLMC_HEADER_INTS)
    if len(header) < LLMC_HEADER_INTS or header[0] != LLMC_MAGIC:
        raise ConfigError(
            f"{path} is not an llm.c token shard (no header with magic number {LLMC_MAGIC}).",
            "llm.c shards start with a 256-int32 header; a nanoGPT folder holds exactly train.bin and val.bin.",
        )
    if header[1] != LLMC_VERSION:
        raise ConfigError(
            f"{path} is an llm.c shard of version {header[1]}; only version 1 (GPT-2, uint16 tokens) is supported.",
            "make the shards with llm.c's GPT-2 tokenizer, or with `gptbench data`.",
        )
    return memmap(path, offset=LLMC_HEADER_INTS * 4, count=int(header[2]))


# ----------------------------------------------------------------------------
# build-nanogpt


def open_npy(path: Path) -> np.ndarray:
    tokens = np.load(path, mmap_mode="r")
    if tokens.dtype != np.uint16 or tokens.ndim != 1:
        raise ConfigError(
            f"{path} holds a {tokens.dtype} array of shape {tokens.shape}; token shards are 1-D uint16.",
            "save them as build-nanogpt's fineweb.py does: np.save(path, tokens.astype(np.uint16))",
        )
    return tokens


# ----------------------------------------------------------------------------
# A folder of shards


def read_shard_folder(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray], str] | None:
    """(train arrays, val arrays, format) for the shards in `folder`, or None when it has none.

    format is "nanogpt" (train.bin/val.bin), "llmc" or "npy".
    """
    bins = sorted(folder.glob("*.bin"))
    names = {p.name for p in bins}
    if {"train.bin", "val.bin"} <= names and not has_llmc_header(folder / "train.bin"):
        train, val, kind = [memmap(folder / "train.bin")], [memmap(folder / "val.bin")], "nanogpt"
    elif bins:
        (train, val), kind = _split(bins, open_llmc), "llmc"
    elif npys := sorted(folder.glob("*.npy")):
        (train, val), kind = _split(npys, open_npy), "npy"
    else:
        return None
    if not train or not val:
        missing = "train" if not train else "val"
        raise ConfigError(
            f"{folder} has no {missing} shard.",
            'shards with "val" in the file name are the val split, all others train.',
        )
    return train, val, kind


def _split(paths: list[Path], open_shard) -> tuple[list[np.ndarray], list[np.ndarray]]:
    train = [open_shard(p) for p in paths if "val" not in p.name]
    val = [open_shard(p) for p in paths if "val" in p.name]
    return train, val


# ----------------------------------------------------------------------------
# nanoGPT's char-level vocabulary (meta.pkl)


class _PlainDataOnly(pickle.Unpickler):
    """An unpickler that builds dicts, lists, strings and numbers and nothing else.

    meta.pkl is a pickle, and a pickle can name any importable callable to run.
    nanoGPT's holds only {"vocab_size": int, "itos": {int: str}, "stoi": {str: int}},
    which the pickle machine builds with opcodes alone, without naming a single
    global; so refusing every global loses nothing and runs no code.
    """

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"meta.pkl names {module}.{name}; only plain data is accepted")


def read_meta_pkl(path: Path) -> str:
    """The characters of a nanoGPT char dataset, id order: chars[i] is token i."""
    hint = (
        "a nanoGPT meta.pkl is {'vocab_size': int, 'itos': {int: str}, 'stoi': {str: int}}, "
        "as its prepare.py writes it."
    )
    try:
        meta = _PlainDataOnly(io.BytesIO(path.read_bytes())).load()
    except Exception as exc:  # UnpicklingError, truncated or not a pickle at all
        raise ConfigError(f"{path} could not be read as plain data ({exc}).", hint) from None
    itos = meta.get("itos") if isinstance(meta, dict) else None
    size = meta.get("vocab_size") if isinstance(meta, dict) else None
    if (
        not isinstance(itos, dict)
        or not isinstance(size, int)
        or sorted(itos) != list(range(size))
        or not all(isinstance(c, str) and len(c) == 1 for c in itos.values())
    ):
        raise ConfigError(f"{path} is not a nanoGPT char vocabulary.", hint)
    chars = "".join(itos[i] for i in range(size))
    if len(set(chars)) != size:
        raise ConfigError(f"{path} maps two ids to the same character.", hint)
    return chars
