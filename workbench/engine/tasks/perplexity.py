"""Perplexity of a model on a text file (tiny Shakespeare unless one is given).

The text is cut into consecutive windows of block_size tokens, each read from
no earlier context (as in training), so every token after the first is
predicted exactly once. `ppl_loss` is the mean cross-entropy per token in nats,
`ppl` its exponential. The first `limit` windows only, when a limit is given.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.nn import functional as F

from ...config import ConfigError
from ...data.corpus import shakespeare_path
from ...data.tokenizers import PromptError, Tokenizer
from . import FreeText, Progress, evaluating, sum_across_ranks, tokens_per_forward


class Perplexity(FreeText):
    name = "ppl"

    def __init__(self, tokenizer: Tokenizer, path: Path | None = None):
        super().__init__(tokenizer)
        self.path = Path(path) if path else None
        self._tokens: torch.Tensor | None = None

    def load(self) -> None:
        self.tokens()

    def tokens(self) -> torch.Tensor:
        """The text's token ids, read and encoded on first use."""
        if self._tokens is None:
            path = self.path or shakespeare_path()
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"{path} could not be read as UTF-8 text ({exc}).", "--data takes a UTF-8 text file."
                ) from None
            try:
                ids = self.tokenizer.encode(text)
            except PromptError as exc:  # a char model meets characters outside its vocabulary
                raise ConfigError(f"{path} cannot be read by this model: {exc.message}", exc.hint) from None
            if len(ids) < 2:
                raise ConfigError(
                    f"{path} has fewer than 2 tokens: there is nothing to predict.",
                    "give a longer text with --data PATH.",
                )
            self._tokens = torch.tensor(ids)
        return self._tokens

    def evaluate(
        self,
        model: torch.nn.Module,
        limit: int = 0,
        rank: int = 0,
        world_size: int = 1,
        progress: Progress | None = None,
    ) -> dict[str, float]:
        ids, T = self.tokens(), model.config.block_size
        windows = math.ceil((len(ids) - 1) / T)
        if limit:
            windows = min(windows, limit)
        starts = [w * T for w in range(rank, windows, world_size)]
        # Full windows go through together; the text's short tail (if any) alone.
        per_forward = max(1, tokens_per_forward(model) // T)
        full = [s for s in starts if s + T < len(ids)]
        groups = [full[i : i + per_forward] for i in range(0, len(full), per_forward)] + [
            [s] for s in starts if s + T >= len(ids)
        ]
        device = next(model.parameters()).device
        # nats and tokens; float64 where the device has it, for sums over millions of tokens
        tally = torch.zeros(2, dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)
        done = 0
        with evaluating(model):
            for group in groups:
                x = torch.stack([ids[s : min(s + T, len(ids) - 1)] for s in group]).to(device)
                y = torch.stack([ids[s + 1 : min(s + T, len(ids) - 1) + 1] for s in group]).to(device)
                logits, _ = model(x)
                nats = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum")
                tally += torch.stack([nats.to(tally.dtype), torch.tensor(y.numel(), dtype=tally.dtype, device=device)])
                done += len(group)
                if progress:
                    progress(done, len(starts))
        nats, count = sum_across_ranks(tally, world_size).tolist()
        return {"ppl": math.exp(nats / count), "ppl_loss": nats / count}
