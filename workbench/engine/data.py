"""Training data: the run's dataset, built from its config.

Two kinds of data (`data.kind`):

- `text`: a corpus of token ids (corpus.py), cut into random windows of
  block_size+1 tokens by a token store and drawn by the batch stream (batches.py).
- `addition`: minGPT's adder on n-digit numbers, with a fixed set of held-out
  problems that training never sees (tasks/addition.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ..config import Config, ConfigError
from ..data.corpus import Corpus, load_corpus
from ..data.tokenizers import Tokenizer
from .batches import BatchStream, Dataset, DeviceTokens, MappedTokens, PrefetchingStream
from .tasks.addition import AdditionDataset
from .tasks.perplexity import Perplexity

# Corpora (train + val) up to 2**30 tokens (~1.07e9, 2 GiB as int16 on each
# process's device) live on the device as one tensor, and windows are gathered
# there with no host round trip: tiny Shakespeare, any book collection, a
# FineWeb sample of a few shards. Bigger ones (OpenWebText's 9B tokens, FineWeb-10B)
# stay memmapped and windows are read on the CPU, then copied over.
RESIDENT_MAX_TOKENS = 1 << 30

VAL_SEED = 1337  # val windows are the same in every eval and every run: curves compare


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
        self.info = {
            "source": source,
            "train_tokens": len(train),
            "val_tokens": len(val),
            "on_device": isinstance(train, DeviceTokens),
        }

    @classmethod
    def from_corpus(
        cls, corpus: Corpus, block_size: int, device: torch.device, on_device: bool | None = None
    ) -> TextDataset:
        """on_device: keep the corpus on the device (None: when it has at most RESIDENT_MAX_TOKENS)."""
        if on_device is None:
            on_device = sum(len(a) for a in corpus.train + corpus.val) <= RESIDENT_MAX_TOKENS
        store = DeviceTokens if on_device else MappedTokens
        return cls(corpus.tokenizer, store(corpus.train, device), store(corpus.val, device), block_size, corpus.source)

    def train_batch(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        return self._xy(self.train.windows(samples, self.block_size + 1))

    def train_stream(self, batch_size: int, grad_accum: int, rank: int, world_size: int, seed: int):
        stream = BatchStream(self, batch_size, grad_accum, rank, world_size, seed)
        if not isinstance(self.train, MappedTokens):
            return stream
        # Memmapped: read the next step's windows while the device computes this one.
        n = self.block_size + 1
        return PrefetchingStream(
            stream,
            read=lambda samples: self.train.read(samples, n),
            finish=lambda rows: self._xy(self.train.upload(rows)),
            depth=2 * grad_accum,
        )

    def val_batches(
        self, batch_size: int, steps: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[Tensor, Tensor]]:
        g = torch.Generator(device=self.rng_device).manual_seed(VAL_SEED)
        for k in range(steps):  # every rank draws every batch's offsets: the windows stay those of one process
            offsets = torch.randint(len(self.val) - self.block_size, (batch_size,), generator=g, device=self.rng_device)
            if k % world_size == rank:
                yield self._xy(self.val.windows(offsets, self.block_size + 1))

    @property
    def task(self) -> Perplexity:
        """Language modelling: free-text prompts, evaluated as perplexity on a text."""
        return Perplexity(self.tokenizer)

    @staticmethod
    def _xy(w: Tensor) -> tuple[Tensor, Tensor]:
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()


def build_dataset(cfg: Config, device: torch.device | str) -> Dataset:
    """The run's dataset on `device`; sets model.vocab_size from the tokenizer when it is 0."""
    device = torch.device(device)
    if cfg.data.kind == "addition":
        dataset = AdditionDataset(cfg.data.ndigit, cfg.data.holdout, cfg.model.block_size, device)
    else:
        dataset = TextDataset.from_corpus(load_corpus(cfg.data), cfg.model.block_size, device, cfg.data.on_device)
    vocab = dataset.tokenizer.vocab_size
    if cfg.model.vocab_size == 0:
        cfg.model.vocab_size = vocab
    elif cfg.model.vocab_size < vocab:
        raise ConfigError(
            f"model.vocab_size={cfg.model.vocab_size} is smaller than the "
            f"{dataset.tokenizer.name} tokenizer's {vocab} tokens.",
            "use --set model.vocab_size=0 to take it from the data",
        )
    return dataset
