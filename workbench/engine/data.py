"""Training data: where tokens come from, and how batches are drawn from them.

Two kinds of data (`data.kind`):

- `text`: a corpus of token ids, cut into random windows of block_size+1 tokens.
  `data.path` is a UTF-8 text file (default: tiny Shakespeare, fetched once into
  the cache), a folder of .txt documents, or a folder of GPT-2 token shards
  (nanoGPT `train.bin`/`val.bin`, llm.c `.bin`, build-nanogpt `.npy`). Text is
  tokenized once and cached as uint16 memmaps in
  `$XDG_CACHE_HOME/gptbench/tokens/<key>/`; the key covers everything that
  changes the tokens (content, tokenizer, char vocabulary, val_fraction).
- `addition`: minGPT's adder on n-digit numbers, with a fixed set of held-out
  problems that training never sees.

Batches follow one rule, which is what makes resume exact and DDP match a single
process: at the start of every optimizer step the stream draws the samples of
the whole global step, a (world_size * grad_accum, batch_size) table, from one
torch.Generator seeded with the run's seed (the same on every rank). Micro-step j
of rank r uses row r * grad_accum + j. So 2 processes x 1 micro-step see exactly
the windows of 1 process x 2 micro-steps, and the stream's state is just the
generator's state and the position in the current step.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from ..config import Config, ConfigError, DataConfig
from .tokenizers import CharTokenizer, DigitTokenizer, GPT2Tokenizer, PromptError, Tokenizer, gpt2_encode_file

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

# Corpora (train + val) up to 2**30 tokens (~1.07e9, 2 GiB as int16 on each
# process's device) live on the device as one tensor, and windows are gathered
# there with no host round trip: tiny Shakespeare, any book collection, a
# FineWeb sample of a few shards. Bigger ones (OpenWebText's 9B tokens, FineWeb-10B)
# stay memmapped and windows are read on the CPU, then copied over.
RESIDENT_MAX_TOKENS = 1 << 30

VAL_SEED = 1337  # val windows are the same in every eval and every run: curves compare
CACHE_VERSION = 1  # bump when the token cache's layout changes
LLMC_MAGIC, LLMC_HEADER_INTS = 20240520, 256


# ----------------------------------------------------------------------------
# Where the data lives


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gptbench"


def shakespeare_path() -> Path:
    """Tiny Shakespeare (1,115,394 chars), downloaded and verified on first use."""
    path = cache_root() / "tinyshakespeare" / "input.txt"
    if not path.exists():
        _download(SHAKESPEARE_URL, path, SHAKESPEARE_SHA256)
    return path


def _download(url: str, path: Path, sha256: str) -> None:
    hint = f"place the file at {path} by hand, or train on your own text with --set data.path=FILE"
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
# Corpora: token ids as uint16 arrays (memmaps), split into train and val


@dataclass
class Corpus:
    tokenizer: Tokenizer
    train: list[np.ndarray]  # one or more uint16 arrays, read as one sequence
    val: list[np.ndarray]
    source: str


def load_corpus(data: DataConfig) -> Corpus:
    path = Path(data.path).expanduser() if data.path else shakespeare_path()
    if not path.exists():
        raise ConfigError(
            f"Data path {path} does not exist.",
            "point data.path at a UTF-8 text file, a folder of .txt files or a folder of token shards: --set data.path=PATH",
        )
    if not path.is_dir():
        return _text_corpus([path], data, str(path))
    shards = _shard_corpus(path)
    if shards is not None:
        if data.tokenizer != "gpt2":
            raise ConfigError(
                f"{path} holds GPT-2 token shards, but data.tokenizer={data.tokenizer}.",
                "shards need the tokenizer they were made with: --set data.tokenizer=gpt2",
            )
        return shards
    files = sorted(path.glob("*.txt"))
    if not files:
        raise ConfigError(
            f"{path} has no .txt files and no token shards.",
            "a data folder holds .txt documents, or train.bin/val.bin (nanoGPT), or llm.c .bin / build-nanogpt .npy shards",
        )
    return _text_corpus(files, data, str(path))


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
    return Corpus(tokenizer, [_memmap(folder / "train.bin")], [_memmap(folder / "val.bin")], source)


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


def _memmap(path: Path, offset: int = 0, count: int | None = None) -> np.ndarray:
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


# --- GPT-2 token shards made by other tools


def _shard_corpus(folder: Path) -> Corpus | None:
    """Token shards in `folder`, or None when there are none.

    nanoGPT: exactly train.bin and val.bin, raw uint16. llm.c: .bin files with a
    256-int32 header. build-nanogpt: .npy uint16 arrays. For the last two, "val"
    in a file's name puts it in the val split.
    """
    bins = sorted(folder.glob("*.bin"))
    names = {p.name for p in bins}
    if {"train.bin", "val.bin"} <= names and not _has_llmc_header(folder / "train.bin"):
        train, val = [_memmap(folder / "train.bin")], [_memmap(folder / "val.bin")]
    elif bins:
        train, val = _split_shards(bins, _open_llmc)
    elif npys := sorted(folder.glob("*.npy")):
        train, val = _split_shards(npys, _open_npy)
    else:
        return None
    if not train or not val:
        missing = "train" if not train else "val"
        raise ConfigError(f"{folder} has no {missing} shard.", 'shards with "val" in the file name are the val split, all others train.')
    return Corpus(GPT2Tokenizer(), train, val, str(folder))


def _split_shards(paths: list[Path], open_shard) -> tuple[list[np.ndarray], list[np.ndarray]]:
    train = [open_shard(p) for p in paths if "val" not in p.name]
    val = [open_shard(p) for p in paths if "val" in p.name]
    return train, val


def _has_llmc_header(path: Path) -> bool:
    return np.fromfile(path, dtype=np.int32, count=1).tolist() == [LLMC_MAGIC]


def _open_llmc(path: Path) -> np.ndarray:
    header = np.fromfile(path, dtype=np.int32, count=LLMC_HEADER_INTS)
    if len(header) < LLMC_HEADER_INTS or header[0] != LLMC_MAGIC:
        raise ConfigError(
            f"{path} is not an llm.c token shard (no header with magic number {LLMC_MAGIC}).",
            "llm.c shards start with a 256-int32 header; a nanoGPT folder holds exactly train.bin and val.bin.",
        )
    if header[1] != 1:
        raise ConfigError(
            f"{path} is an llm.c shard of version {header[1]}; only version 1 (GPT-2, uint16 tokens) is supported.",
            "make the shards with llm.c's GPT-2 tokenizer.",
        )
    return _memmap(path, offset=LLMC_HEADER_INTS * 4, count=int(header[2]))


def _open_npy(path: Path) -> np.ndarray:
    tokens = np.load(path, mmap_mode="r")
    if tokens.dtype != np.uint16 or tokens.ndim != 1:
        raise ConfigError(
            f"{path} holds a {tokens.dtype} array of shape {tokens.shape}; token shards are 1-D uint16.",
            "save them as build-nanogpt's fineweb.py does: np.save(path, tokens.astype(np.uint16))",
        )
    return tokens


# ----------------------------------------------------------------------------
# Token stores: windows of a corpus split, as int64 tensors on the device


class DeviceTokens:
    """A split small enough to live on the device: windows are gathered there."""

    def __init__(self, arrays: list[np.ndarray], device: torch.device):
        # Stored as int16, the same bits as uint16: every backend can index
        # int16, and `& 0xFFFF` after widening turns ids >= 32768 back positive.
        self.tokens = torch.from_numpy(np.concatenate(arrays).view(np.int16)).to(device)
        self.rng_device = device  # offsets are drawn where the tokens are: no host sync

    def __len__(self) -> int:
        return self.tokens.numel()

    def windows(self, offsets: Tensor, n: int) -> Tensor:
        idx = offsets[:, None] + torch.arange(n, device=offsets.device)
        return self.tokens[idx].long() & 0xFFFF


class MappedTokens:
    """A split too big for the device: windows are read from memmaps on the CPU."""

    rng_device = torch.device("cpu")

    def __init__(self, arrays: list[np.ndarray], device: torch.device):
        self.arrays = arrays
        self.starts = np.cumsum([0] + [len(a) for a in arrays])  # shard i starts at starts[i]
        self.device = device

    def __len__(self) -> int:
        return int(self.starts[-1])

    def windows(self, offsets: Tensor, n: int) -> Tensor:
        rows = torch.from_numpy(np.stack([self._read(o, n) for o in offsets.tolist()]).astype(np.int64))
        if self.device.type == "cuda":  # pinned memory lets the copy overlap with compute
            return rows.pin_memory().to(self.device, non_blocking=True)
        return rows.to(self.device)

    def _read(self, start: int, n: int) -> np.ndarray:
        """n tokens from `start`, continuing into the next shard(s) when a window straddles them."""
        i = int(np.searchsorted(self.starts, start, side="right")) - 1
        pieces = []
        while n > 0:
            local = start - int(self.starts[i])
            piece = self.arrays[i][local:local + n]
            pieces.append(piece)
            start, n, i = start + len(piece), n - len(piece), i + 1
        return np.concatenate(pieces)


# ----------------------------------------------------------------------------
# Datasets and the training stream


class Dataset:
    """What the trainer sees. Subclasses define the samples and how they become (x, y).

    Training samples are numbered 0..n_train-1 (a window offset, a problem);
    `train_batch` turns a (batch_size,) tensor of sample numbers into (x, y).
    """

    tokenizer: Tokenizer
    block_size: int
    n_train: int
    rng_device: torch.device  # where the stream's generator draws

    def train_batch(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def train_stream(self, batch_size: int, grad_accum: int, rank: int, world_size: int, seed: int) -> "BatchStream":
        return BatchStream(self, batch_size, grad_accum, rank, world_size, seed)

    def val_batches(self, batch_size: int, steps: int) -> Iterator[tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def metrics(self, model: torch.nn.Module, final: bool = False) -> dict:
        """Task metrics; `final` marks the run's last eval, where costly ones may run."""
        return {}


class BatchStream:
    """One process's micro-batches, drawn by the global-batch rule (see the top of this file)."""

    def __init__(self, dataset: Dataset, batch_size: int, grad_accum: int, rank: int, world_size: int, seed: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        self.dataset = dataset
        self.grad_accum = grad_accum
        self.first_row = rank * grad_accum
        self.table_shape = (world_size * grad_accum, batch_size)
        self.generator = torch.Generator(device=dataset.rng_device).manual_seed(seed)
        self.table: Tensor | None = None
        self.rng_before_table: Tensor | None = None
        self.micro = grad_accum  # micro-batches served from the table; grad_accum: draw the next step's

    def next(self) -> tuple[Tensor, Tensor]:
        if self.micro == self.grad_accum:
            self._draw_step()
        row = self.table[self.first_row + self.micro]
        self.micro += 1
        return self.dataset.train_batch(row)

    def _draw_step(self) -> None:
        self.rng_before_table = self.generator.get_state()
        device = self.generator.device
        self.table = torch.randint(self.dataset.n_train, self.table_shape, generator=self.generator, device=device)
        self.micro = 0

    def state_dict(self) -> dict:
        """The position at the start of the current step: a checkpoint holds whole steps only."""
        if self.micro == self.grad_accum:  # between optimizer steps
            return {"rng": self.generator.get_state(), "micro": 0}
        return {"rng": self.rng_before_table, "micro": 0}

    def load_state_dict(self, d: dict) -> None:
        self.generator.set_state(d["rng"])
        self.micro = self.grad_accum  # the next micro-batch draws this step's table again

    def rewind_step(self) -> None:
        """Forget the micro-batches served in this step (a stop mid-step): they come again."""
        if self.micro != self.grad_accum:
            self.load_state_dict(self.state_dict())


class TextDataset(Dataset):
    """Random windows of block_size+1 tokens: x = w[:-1], y = w[1:]."""

    def __init__(self, tokenizer: Tokenizer, train, val, block_size: int, source: str):
        for split, tokens in (("train", train), ("val", val)):
            if len(tokens) <= block_size:
                raise ConfigError(
                    f"model.block_size={block_size} needs at least {block_size + 1} tokens in each split, "
                    f"but the {split} split of {source} has {len(tokens):,}.",
                    f"lower it, e.g. --set model.block_size={max(1, len(tokens) // 2)}, or use more data "
                    "(--set data.path=..., or a larger data.val_fraction for the val split).",
                )
        self.tokenizer, self.train, self.val, self.block_size = tokenizer, train, val, block_size
        self.n_train = len(train) - block_size  # window offsets 0..len-block_size-1
        self.rng_device = train.rng_device
        self.info = {"source": source, "train_tokens": len(train), "val_tokens": len(val), "on_device": isinstance(train, DeviceTokens)}

    @classmethod
    def from_corpus(cls, corpus: Corpus, block_size: int, device: torch.device) -> "TextDataset":
        total = sum(len(a) for a in corpus.train + corpus.val)
        store = DeviceTokens if total <= RESIDENT_MAX_TOKENS else MappedTokens
        return cls(corpus.tokenizer, store(corpus.train, device), store(corpus.val, device), block_size, corpus.source)

    def train_batch(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        return self._xy(self.train, samples)

    def val_batches(self, batch_size: int, steps: int) -> Iterator[tuple[Tensor, Tensor]]:
        g = torch.Generator(device=self.rng_device).manual_seed(VAL_SEED)
        for _ in range(steps):
            offsets = torch.randint(len(self.val) - self.block_size, (batch_size,), generator=g, device=self.rng_device)
            yield self._xy(self.val, offsets)

    def _xy(self, tokens, offsets: Tensor) -> tuple[Tensor, Tensor]:
        w = tokens.windows(offsets, self.block_size + 1)
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()


# --- addition


HOLDOUT_SEED = 1337  # minGPT's: for 2 digits the held-out set is exactly minGPT's test set


class AdditionDataset(Dataset):
    """minGPT's adder, for n-digit numbers.

    Problem p in 0..10^(2n)-1 is a + b with a = p // 10^n, b = p % 10^n. Its
    sequence is the digits of a and b (zero-padded to n) and then the digits of
    the sum reversed, padded to n+1 (reversed so the model writes the ones digit
    first, as carrying works). Loss counts only the answer positions.
    """

    def __init__(self, ndigit: int, holdout: int, block_size: int, device: torch.device):
        n = ndigit
        if block_size < 3 * n:
            raise ConfigError(
                f"model.block_size={block_size} is shorter than a {n}-digit addition problem ({3 * n} tokens).",
                f"use --set model.block_size={3 * n}",
            )
        self.ndigit, self.block_size, self.device = n, block_size, device
        self.tokenizer = DigitTokenizer()
        self.rng_device = device
        self.total = 10 ** (2 * n)
        self.answer_length = n + 1
        self.heldout = _holdout_ids(self.total, holdout).to(device)  # in random order
        self.n_train = self.total - holdout
        # Training sample i is the i-th problem that is not held out. The j-th
        # held-out id (sorted) has h_j - j training problems below it, so
        # problem = i + (number of held-out ids with h_j - j <= i).
        held = self.heldout.sort().values
        self.skips = held - torch.arange(holdout, device=device)
        self.info = {"problems": self.total, "held_out": holdout}

    def train_batch(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        return self.xy(samples + torch.searchsorted(self.skips, samples, right=True))

    def val_batches(self, batch_size: int, steps: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The held-out problems in a fixed order, wrapping around to fill `steps` batches."""
        for k in range(steps):
            pos = (k * batch_size + torch.arange(batch_size, device=self.device)) % len(self.heldout)
            yield self.xy(self.heldout[pos])

    def sequences(self, problems: Tensor) -> Tensor:
        """(B,) problem ids -> (B, 3n+1) digit sequences."""
        n = self.ndigit
        a, b = problems // 10**n, problems % 10**n
        return torch.cat([_digits(a, n), _digits(b, n), _digits(a + b, n + 1).flip(1)], dim=1)

    def xy(self, problems: Tensor) -> tuple[Tensor, Tensor]:
        seq = self.sequences(problems)
        x, y = seq[:, :-1].contiguous(), seq[:, 1:].clone()
        y[:, : 2 * self.ndigit - 1] = -1  # the operands are given, not predicted
        return x, y

    # --- task metrics: exact match by greedy decoding

    def metrics(self, model: torch.nn.Module, final: bool = False) -> dict:
        result = {"accuracy": self._accuracy(model, self.heldout)}
        # Every problem: at each eval up to 2 digits (10k problems, cheap); for
        # 3 digits (1M problems, seconds) only at the run's final eval.
        if self.total <= 10_000 or (final and self.ndigit <= 3):
            result["accuracy_all"] = self.accuracy_all(model)
        return result

    def accuracy_all(self, model: torch.nn.Module) -> float:
        """Exact-match accuracy on every problem, held out or not (up to 3 digits)."""
        if self.ndigit > 3:
            raise ConfigError(
                f"Checking all {self.total:,} problems of {self.ndigit}-digit addition would take too long.",
                "accuracy on all problems is available up to 3 digits; the held-out accuracy is in the metrics.",
            )
        return self._accuracy(model, torch.arange(self.total, device=self.device))

    @torch.no_grad()
    def _accuracy(self, model: torch.nn.Module, problems: Tensor, chunk: int = 4096) -> float:
        n, was_training = self.ndigit, model.training
        model.eval()
        try:
            correct = torch.zeros((), dtype=torch.long, device=self.device)
            for part in problems.split(chunk):
                seq = self.sequences(part)
                answer = self._greedy(model, seq[:, : 2 * n])
                correct += (answer == seq[:, 2 * n:]).all(dim=1).sum()
        finally:
            model.train(was_training)
        return correct.item() / len(problems)  # one host sync per evaluation

    def _greedy(self, model: torch.nn.Module, idx: Tensor) -> Tensor:
        for _ in range(self.answer_length):
            logits, _ = model(idx)
            # Only digits can be answers; columns past 10 are the padded vocabulary.
            next_digit = logits[:, -1, : self.tokenizer.vocab_size].argmax(dim=-1, keepdim=True)
            idx = torch.cat([idx, next_digit], dim=1)
        return idx[:, 2 * self.ndigit:]

    # --- the sampling console

    def format_prompt(self, text: str) -> list[int]:
        """'23+58' or '23 + 58' -> the prompt's digit ids, operands zero-padded to n digits."""
        n = self.ndigit
        match = re.fullmatch(rf"\s*([0-9]{{1,{n}}})\s*\+\s*([0-9]{{1,{n}}})\s*=?\s*", text)
        if not match:
            example = f"{('23' * n)[:n]}+{('58' * n)[:n]}"
            raise PromptError(f"{text!r} is not a sum this model can do.", f"type two numbers of at most {n} digits, e.g. {example}")
        a, b = match.groups()
        return self.tokenizer.encode(a.zfill(n) + b.zfill(n))

    def read_answer(self, prompt: str | list[int], generated_ids: list[int]) -> dict:
        """The model's answer to a prompt, from the n+1 (reversed) digits it generated."""
        ids = self.format_prompt(prompt) if isinstance(prompt, str) else list(prompt)
        n = self.ndigit
        a, b = int(self.tokenizer.decode(ids[:n])), int(self.tokenizer.decode(ids[n : 2 * n]))
        answer = int(self.tokenizer.decode(list(generated_ids)[: n + 1][::-1]))
        return {"answer": answer, "expected": a + b, "correct": answer == a + b}


def _digits(values: Tensor, width: int) -> Tensor:
    """(B,) non-negative ints -> (B, width) decimal digits, most significant first."""
    powers = 10 ** torch.arange(width - 1, -1, -1, device=values.device)
    return values[:, None] // powers % 10


def _holdout_ids(total: int, holdout: int) -> Tensor:
    """`holdout` distinct problem ids, in random order, the same in every run."""
    g = torch.Generator().manual_seed(HOLDOUT_SEED)
    if total <= 10**6:  # up to 3 digits: permute all problems, as minGPT does
        return torch.randperm(total, generator=g)[:holdout]
    # More digits are too many to permute: draw ids until enough are distinct,
    # then keep a random `holdout` of them.
    ids = torch.empty(0, dtype=torch.long)
    while len(ids) < holdout:
        ids = torch.cat([ids, torch.randint(total, (holdout,), generator=g)]).unique()
    return ids[torch.randperm(len(ids), generator=g)[:holdout]]


# ----------------------------------------------------------------------------


def build_dataset(cfg: Config, device: torch.device | str) -> Dataset:
    """The run's dataset on `device`; sets model.vocab_size from the tokenizer when it is 0."""
    device = torch.device(device)
    if cfg.data.kind == "addition":
        dataset = AdditionDataset(cfg.data.ndigit, cfg.data.holdout, cfg.model.block_size, device)
    else:
        dataset = TextDataset.from_corpus(load_corpus(cfg.data), cfg.model.block_size, device)
    vocab = dataset.tokenizer.vocab_size
    if cfg.model.vocab_size == 0:
        cfg.model.vocab_size = vocab
    elif cfg.model.vocab_size < vocab:
        raise ConfigError(
            f"model.vocab_size={cfg.model.vocab_size} is smaller than the {dataset.tokenizer.name} tokenizer's {vocab} tokens.",
            "use --set model.vocab_size=0 to take it from the data",
        )
    return dataset
