"""gptbench tokenizers as Hugging Face tokenizer files, and back.

- GPT-2 BPE: `vocab.json` + `merges.txt`, the files `transformers.GPT2Tokenizer`
  reads, derived from the tiktoken ranks vendored in `workbench/assets`.
- char (and the adder's digits): a `tokenizers` tokenizer.json: a BPE model with
  one token per character and no merges (so every character stays a token) and
  the Fuse decoder (so decoding concatenates instead of joining with spaces).

Reading goes the other way for `model.init_from` / `gptbench sample FOLDER`:
which gptbench tokenizer a Hugging Face folder's files describe, when it is one
of ours. No torch here (the CLI checks sources with it).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from ..run_files import read_json
from .tokenizers import EOT, GPT2Tokenizer, Tokenizer, _gpt2_encoding


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (openai/gpt-2, encoder.py).

    Byte-level BPE files store tokens as text; bytes that are printable map to
    themselves, the others (space, control bytes) to characters from 256 up,
    which is why GPT-2's vocab.json spells " the" as "Ġthe".
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def _merge_parts(ranks: dict[bytes, int], token: bytes, rank: int) -> list[bytes]:
    """Run BPE on a token's bytes with only the merges ranked below it.

    What is left are the two tokens whose merge made it: the merge this token's
    rank stands for (tiktoken keeps ranks, merges.txt wants the pairs).
    """
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        candidates = [(ranks.get(parts[i] + parts[i + 1], rank), i) for i in range(len(parts) - 1)]
        best, i = min(candidates)
        if best >= rank:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


@functools.lru_cache(maxsize=1)
def gpt2_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """GPT-2's vocab.json (token text -> id) and merges.txt lines, in rank order."""
    ranks = _gpt2_encoding()._mergeable_ranks
    to_text = bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_text[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    vocab[EOT] = GPT2Tokenizer.eot
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) > 1:
            left, right = _merge_parts(ranks, token, rank)
            merges.append(f"{text(left)} {text(right)}")
    return vocab, merges


def write_hf_tokenizer(tokenizer: Tokenizer, out: Path, max_length: int) -> str:
    """Write the tokenizer files for `AutoTokenizer.from_pretrained(out)`; returns what was written."""
    out = Path(out)
    if isinstance(tokenizer, GPT2Tokenizer):
        vocab, merges = gpt2_vocab_and_merges()
        (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        config = {
            "tokenizer_class": "GPT2Tokenizer",
            "model_max_length": max_length,
            "add_prefix_space": False,
            "bos_token": EOT,
            "eos_token": EOT,
            "unk_token": EOT,
            "clean_up_tokenization_spaces": False,
        }
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        return "GPT-2 BPE (vocab.json, merges.txt)"

    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models

    chars = tokenizer.chars if hasattr(tokenizer, "chars") else tokenizer.decode(list(range(tokenizer.vocab_size)))
    hf = HFTokenizer(models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[]))
    hf.decoder = decoders.Fuse()
    hf.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return f"{len(chars)} characters, one token each (tokenizer.json)"


def read_hf_tokenizer(folder: Path) -> dict | None:
    """The gptbench tokenizer (as in a run's tokenizer.json) that a Hugging Face folder holds, if it is one of ours."""
    folder = Path(folder)
    vocab_file = folder / "vocab.json"
    if vocab_file.is_file() and (folder / "merges.txt").is_file():
        vocab = read_json(vocab_file)
        if len(vocab) == GPT2Tokenizer.vocab_size and vocab.get(EOT) == GPT2Tokenizer.eot:
            return {"kind": "gpt2"}
    spec = read_json(folder / "tokenizer.json")
    model, decoder = spec.get("model") or {}, spec.get("decoder") or {}
    if model.get("type") == "BPE" and not model.get("merges") and decoder.get("type") == "Fuse":
        by_id = sorted(model.get("vocab", {}).items(), key=lambda item: item[1])
        if [i for _, i in by_id] == list(range(len(by_id))) and all(len(c) == 1 for c, _ in by_id):
            return {"kind": "char", "chars": "".join(c for c, _ in by_id)}
    return None
