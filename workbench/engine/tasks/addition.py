"""minGPT's adder: a training dataset and a task (exact match by greedy decoding)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import torch
from torch import Tensor

from ...config import ConfigError
from ...data.tokenizers import DigitTokenizer, PromptError
from ..batches import Dataset
from . import Progress, evaluating

HOLDOUT_SEED = 1337  # minGPT's: for 2 digits the held-out set is exactly minGPT's test set


class AdditionDataset(Dataset):
    """minGPT's adder, for n-digit numbers.

    Problem p in 0..10^(2n)-1 is a + b with a = p // 10^n, b = p % 10^n. Its
    sequence is the digits of a and b (zero-padded to n) and then the digits of
    the sum reversed, padded to n+1 (reversed so the model writes the ones digit
    first, as carrying works). Loss counts only the answer positions.
    """

    name = "addition"

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

    @property
    def task(self) -> AdditionDataset:
        return self  # the adder is its own task

    def train_batch(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        return self.xy(samples + torch.searchsorted(self.skips, samples, right=True))

    def val_batches(
        self, batch_size: int, steps: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The held-out problems in a fixed order, wrapping around to fill `steps` batches; this rank's share."""
        for k in range(rank, steps, world_size):
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

    # --- what to evaluate: exact match by greedy decoding

    def metrics(self, model: torch.nn.Module, final: bool = False) -> dict:
        """At every training eval: the held-out problems, and every problem up to 2 digits
        (10k problems, cheap); for 3 digits (1M problems, seconds) only at the run's final eval."""
        return self.evaluate(model, everything=self.total <= 10_000 or (final and self.ndigit <= 3))

    def evaluate(
        self,
        model: torch.nn.Module,
        limit: int = 0,
        rank: int = 0,
        world_size: int = 1,
        progress: Progress | None = None,
        everything: bool | None = None,
    ) -> dict[str, float]:
        """Accuracy on the held-out problems (the first `limit`) and on all problems (up to 3 digits).

        Cheap enough that every rank checks them all: rank and world_size are not needed.
        """
        problems = self.heldout[:limit] if limit else self.heldout
        everything = self.ndigit <= 3 if everything is None else everything
        result = {"accuracy": self._accuracy(model, problems)}
        if progress:
            progress(len(problems), len(problems))
        if everything:
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

    def _accuracy(self, model: torch.nn.Module, problems: Tensor, chunk: int = 4096) -> float:
        n = self.ndigit
        with evaluating(model):
            correct = torch.zeros((), dtype=torch.long, device=self.device)
            for part in problems.split(chunk):
                seq = self.sequences(part)
                answer = self._greedy(model, seq[:, : 2 * n])
                correct += (answer == seq[:, 2 * n :]).all(dim=1).sum()
        return correct.item() / len(problems)  # one host sync per evaluation

    def _greedy(self, model: torch.nn.Module, idx: Tensor) -> Tensor:
        for _ in range(self.answer_length):
            logits, _ = model(idx)
            # Only digits can be answers; columns past 10 are the padded vocabulary.
            next_digit = logits[:, -1, : self.tokenizer.vocab_size].argmax(dim=-1, keepdim=True)
            idx = torch.cat([idx, next_digit], dim=1)
        return idx[:, 2 * self.ndigit :]

    # --- how to format a prompt, how to judge the answer (the sampling console)

    def format_prompt(self, text: str) -> list[int]:
        """'23+58' or '23 + 58' -> the prompt's digit ids, operands zero-padded to n digits."""
        n = self.ndigit
        match = re.fullmatch(rf"\s*([0-9]{{1,{n}}})\s*\+\s*([0-9]{{1,{n}}})\s*=?\s*", text)
        if not match:
            example = f"{('23' * n)[:n]}+{('58' * n)[:n]}"
            raise PromptError(
                f"{text!r} is not a sum this model can do.", f"type two numbers of at most {n} digits, e.g. {example}"
            )
        a, b = match.groups()
        return self.tokenizer.encode(a.zfill(n) + b.zfill(n))

    def judge(self, prompt: str | list[int], answer_ids: list[int]) -> dict:
        """The model's answer to a prompt, from the n+1 (reversed) digits it generated, and whether it is right."""
        ids = self.format_prompt(prompt) if isinstance(prompt, str) else list(prompt)
        n = self.ndigit
        a, b = int(self.tokenizer.decode(ids[:n])), int(self.tokenizer.decode(ids[n : 2 * n]))
        answer = int(self.tokenizer.decode(list(answer_ids)[: n + 1][::-1]))
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
