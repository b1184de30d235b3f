"""HellaSwag, scored the way build-nanogpt (and llm.c's dev/data/hellaswag.py) score it.

An example is a context and four endings, one of them right. For each ending
the model reads context + " " + ending (the space belongs to the ending's first
GPT-2 token), and the ending's tokens are scored by their cross-entropy:
acc_norm picks the ending with the lowest mean loss per token (the number
build-nanogpt plots: HF GPT-2 124M scores 0.2955 on the 10,042 val examples),
acc the lowest summed loss (0.2859). Rows longer than block_size lose tokens
from the left, so the ending is always scored in full.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.nn import functional as F

from ...config import ConfigError
from ...data.corpus import cached_file
from ...data.tokenizers import Tokenizer
from . import FreeText, Progress, evaluating, sum_across_ranks, tokens_per_forward

HELLASWAG_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
# The val file's sha256 as recorded by Hugging Face datasets' hellaswag builder
# (download_checksums in its dataset_infos.json: 12,246,618 bytes).
HELLASWAG_SHA256 = "0aa3b88843990f3f10a97b9575c94d7b71fb2205240ba04ae4884d9e9c992588"


def hellaswag_path() -> Path:
    """HellaSwag's validation set, downloaded and verified on first use."""
    return cached_file(
        "hellaswag/hellaswag_val.jsonl",
        HELLASWAG_URL,
        HELLASWAG_SHA256,
        "place hellaswag_val.jsonl at {path} by hand, or give `gptbench eval` an offline copy: --data PATH",
    )


class HellaSwag(FreeText):
    name = "hellaswag"

    def __init__(self, tokenizer: Tokenizer, path: Path | None = None):
        if tokenizer.name != "gpt2":
            raise ConfigError(
                f"HellaSwag is English text for a GPT-2 BPE model; this model reads {tokenizer.name} tokens.",
                "evaluate a model trained with data.tokenizer=gpt2, or use --task ppl.",
            )
        super().__init__(tokenizer)
        self.path = Path(path) if path else hellaswag_path()
        # Tokenized once: a training run scores the same examples at every eval.
        self.examples = [self._render(example) for example in _read_examples(self.path)]

    def _render(self, example: dict) -> tuple[list[int], list[list[int]], int]:
        """(context tokens, each ending's tokens, the right ending's index)."""
        context = self.tokenizer.encode(example["ctx"])
        endings = [self.tokenizer.encode(" " + ending) for ending in example["endings"]]
        return context, endings, int(example["label"])

    def evaluate(
        self,
        model: torch.nn.Module,
        limit: int = 0,
        rank: int = 0,
        world_size: int = 1,
        progress: Progress | None = None,
    ) -> dict[str, float]:
        examples = self.examples[:limit] if limit else self.examples
        mine = [examples[i] for i in range(rank, len(examples), world_size)]
        device = next(model.parameters()).device
        tally = torch.zeros(3, dtype=torch.long, device=device)  # right by summed loss, by mean loss, examples
        done = 0
        with evaluating(model):
            for batch in _batches(mine, model.config.block_size, tokens_per_forward(model)):
                tokens, mask, labels = (t.to(device) for t in _pad(batch, model.config.block_size))
                logits, _ = model(tokens)
                # Position t predicts token t+1; only the ending's tokens count.
                losses = F.cross_entropy(
                    logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none"
                )
                shift_mask = mask[:, 1:]
                sum_loss = (losses.view_as(shift_mask) * shift_mask).sum(dim=1).view(-1, 4)
                avg_loss = sum_loss / shift_mask.sum(dim=1).view(-1, 4)
                tally += torch.stack(
                    [
                        (sum_loss.argmin(dim=1) == labels).sum(),
                        (avg_loss.argmin(dim=1) == labels).sum(),
                        torch.tensor(len(labels), device=device),
                    ]
                )
                done += len(batch)
                if progress:
                    progress(done, len(mine))
        right_sum, right_norm, n = sum_across_ranks(tally, world_size).tolist()
        return {"hellaswag_acc_norm": right_norm / n, "hellaswag_acc": right_sum / n}


def _read_examples(path: Path) -> list[dict]:
    hint = (
        "each line is a JSON object with ctx, endings (4 strings) and label (0-3), "
        "as in HellaSwag's hellaswag_val.jsonl"
    )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} could not be read ({exc}).", hint) from None
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
            ok = (
                isinstance(example["ctx"], str)
                and len(example["endings"]) == 4
                and all(isinstance(e, str) for e in example["endings"])
                and str(example["label"]) in ("0", "1", "2", "3")
            )
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise ConfigError(f"Line {number} of {path} is not a HellaSwag example.", hint)
        examples.append(example)
    if not examples:
        raise ConfigError(f"{path} holds no HellaSwag examples.", hint)
    return examples


def _batches(examples: list, block_size: int, budget: int):
    """Consecutive examples, as many per forward pass as fit in `budget` tokens (at least one)."""
    batch, longest = [], 0
    for example in examples:
        context, endings, _ = example
        length = min(block_size, len(context) + max(len(e) for e in endings))
        if batch and 4 * (len(batch) + 1) * max(longest, length) > budget:
            yield batch
            batch, longest = [], 0
        batch.append(example)
        longest = max(longest, length)
    if batch:
        yield batch


def _pad(batch: list, block_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(4B, T) tokens and ending masks, right-padded with zeros (the mask keeps padding out), and (B,) labels."""
    rows, masks = [], []
    for context, endings, _ in batch:
        for ending in endings:
            row, mask = context + ending, [0] * len(context) + [1] * len(ending)
            rows.append(row[-block_size:])  # too long: cut from the left
            masks.append(mask[-block_size:])
    width = max(len(r) for r in rows)
    tokens = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, m) in enumerate(zip(rows, masks)):
        tokens[i, : len(row)] = torch.tensor(row)
        mask[i, : len(m)] = torch.tensor(m)
    labels = torch.tensor([label for _, _, label in batch])
    return tokens, mask, labels
