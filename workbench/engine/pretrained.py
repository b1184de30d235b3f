"""Load a model's starting weights: `model.init_from` and `gptbench sample SOURCE`.

`weights_source.py` has already decided what the source is and which
architecture it has (the config was resolved with it); this module finds the
tensors and copies them in:

- GPT-2 names come from the Hugging Face cache if it has them (under the
  `openai-community/` name or the old bare one), else from the Hub;
- Hugging Face folders hold model.safetensors (preferred: no pickle at all) or
  pytorch_model.bin (read with weights_only=True);
- gptbench runs hold best.pt / last.pt.

A model.block_size below the source's keeps the first block_size position
embeddings, as nanoGPT's crop_block_size does.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import Config, ConfigError, ModelConfig
from ..data.tokenizers import Tokenizer, from_dict
from ..run_files import BEST_CKPT, LAST_CKPT
from ..weights_source import HF_WEIGHT_FILES, HUB_REPOS, WeightsSource, resolve
from . import train_state
from .model import GPT


def hub_folder(name: str) -> Path:
    """The local folder of a GPT-2 from the Hub: the cache when it has it, else a download."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    for repo in (HUB_REPOS[name], name):
        for weights in HF_WEIGHT_FILES:
            try:
                hf_hub_download(repo, weights, local_files_only=True)
                return Path(hf_hub_download(repo, "config.json", local_files_only=True)).parent
            except LocalEntryNotFoundError:
                continue
    try:
        hf_hub_download(HUB_REPOS[name], "config.json")
        return Path(hf_hub_download(HUB_REPOS[name], "model.safetensors")).parent
    except Exception as exc:  # offline, no network, Hub down: all end the same way
        raise ConfigError(
            f"{name} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and could not be downloaded "
            f"({type(exc).__name__}).",
            "download it once where the Hub is reachable (it is cached after), or pass a local folder: "
            "--set model.init_from=PATH",
        ) from None


def read_hf_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A transformers GPT-2 state dict (model.safetensors or pytorch_model.bin), keys as GPT2LMHeadModel names them."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not tensors, or pickled code
        raise ConfigError(
            f"{path} could not be read ({type(exc).__name__}: {exc}).",
            "the file may be incomplete; download or export it again.",
        ) from None
    # The Hub's original GPT-2 files were saved from GPT2Model: no "transformer." prefix.
    return {k if k.startswith(("transformer.", "lm_head.")) else f"transformer.{k}": v for k, v in state.items()}


def _crop_positions(state: dict[str, torch.Tensor], block_size: int) -> None:
    if "transformer.wpe.weight" in state:  # model.position=rope has no position table
        state["transformer.wpe.weight"] = state["transformer.wpe.weight"][:block_size]


def locate(source: WeightsSource) -> Path:
    """The file that holds the source's weights (a GPT-2 name is fetched here, cache first)."""
    if source.kind == "run":
        return source.folder / (BEST_CKPT if (source.folder / BEST_CKPT).is_file() else LAST_CKPT)
    folder = hub_folder(source.spec) if source.kind == "hub" else source.folder
    return next(folder / name for name in HF_WEIGHT_FILES if (folder / name).is_file())


def load_weights(model: GPT, source: WeightsSource, path: Path) -> None:
    """Copy the weights in `path` (from `locate`) into model, built with the source's architecture."""
    if source.kind == "run":
        state = train_state.saved_weights(train_state.read(path))
        _crop_positions(state, model.config.block_size)
        model.load_state_dict(state)
        return
    state = read_hf_state_dict(path)
    _crop_positions(state, model.config.block_size)
    try:
        model.load_hf_gpt2_state_dict(state)
    except ValueError as exc:
        raise ConfigError(
            f"The weights in {path} do not fit their config.json: {exc}.", "the folder may mix files of two models."
        ) from None


def init_from(model: GPT, cfg: Config, tokenizer: Tokenizer) -> str:
    """Start training from cfg.model.init_from's weights; returns the line the run's log shows."""
    source = resolve(cfg.model.init_from)
    if source.tokenizer is not None and source.tokenizer != tokenizer.to_dict():
        raise ConfigError(
            f"The data's {tokenizer.name} vocabulary ({tokenizer.vocab_size} tokens) is not the one "
            f"model.init_from={source.spec} was trained with.",
            "a char model continues only on text with exactly its characters; pick such a text or start from scratch.",
        )
    path = locate(source)
    load_weights(model, source, path)
    cropped = (
        f", cropped to block_size={cfg.model.block_size}"
        if cfg.model.block_size < source.architecture["block_size"]
        else ""
    )
    unchecked = (
        "" if source.tokenizer else " (the source names no tokenizer: its token ids are taken to mean the data's)"
    )
    return f"weights from {source.spec} ({path}); architecture from it: {source.describe()}{cropped}{unchecked}"


def for_sampling(spec: str, device: torch.device) -> tuple[GPT, Tokenizer]:
    """A model and its tokenizer from a GPT-2 name or a Hugging Face folder, ready to generate."""
    source = resolve(spec)
    if source.tokenizer is None:
        raise ConfigError(
            f"{spec} has no tokenizer gptbench can read "
            "(GPT-2's vocab.json + merges.txt, or a one-token-per-character tokenizer.json).",
            "export it with `gptbench export RUN --format hf`, or sample it with transformers.",
        )
    path = locate(source)  # before building the model: a missing download fails in a moment
    model = GPT(ModelConfig(**source.architecture))
    load_weights(model, source, path)
    return model.to(device).eval(), from_dict(source.tokenizer)
