"""Where a model's weights come from: `model.init_from` and `gptbench sample SOURCE`.

A source is one of
- a GPT-2 name: gpt2, gpt2-medium, gpt2-large, gpt2-xl (from the Hugging Face
  Hub through its local cache, offline first);
- a Hugging Face GPT-2 folder: config.json + model.safetensors (or pytorch_model.bin);
- a gptbench run directory: config.json + best.pt (or last.pt).

The source decides the architecture: `adopt_architecture` copies its model keys
over the preset's and refuses explicit `--set model.*` values that disagree.
This module reads JSON only (no torch, no network), so the CLI and the app check
a config before anything starts; `engine/pretrained.py` loads the tensors and
is the one that may download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import Config, ConfigError
from .run_files import BEST_CKPT, LAST_CKPT, TOKENIZER_FILE, read_json

# The four GPT-2s OpenAI released, by their Hub names (the unprefixed names are
# the old aliases; a cache filled by transformers' from_pretrained("gpt2") uses them).
HUB_REPOS = {name: f"openai-community/{name}" for name in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")}

# Their architectures (the Hub's config.json files), for a config that resolves
# before the download; nanoGPT's from_pretrained lists the same. A cached copy's
# own config.json has the last word.
# GPT-2's architecture is the classic one: learned positions, LayerNorm, a tied head.
CLASSIC = {"position": "learned", "norm": "layernorm", "qk_norm": False, "tie_embeddings": True, "logit_softcap": 0.0}
_GPT2 = {"block_size": 1024, "vocab_size": 50257, "bias": True, "activation": "gelu_tanh", **CLASSIC}
HUB_ARCHITECTURES = {
    "gpt2": {"n_layer": 12, "n_head": 12, "n_embd": 768, **_GPT2},
    "gpt2-medium": {"n_layer": 24, "n_head": 16, "n_embd": 1024, **_GPT2},
    "gpt2-large": {"n_layer": 36, "n_head": 20, "n_embd": 1280, **_GPT2},
    "gpt2-xl": {"n_layer": 48, "n_head": 25, "n_embd": 1600, **_GPT2},
}
ARCHITECTURE_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "bias", "activation", *CLASSIC)

# transformers' activation_function -> model.activation. gelu_new and
# gelu_pytorch_tanh are both the tanh approximation GPT-2 was trained with.
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu2": "relu2"}
ACTIVATION_TO_HF = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu2": "relu2"}

# GPT2Config options our GPT does not have, with the value that means "as GPT-2".
_HF_PLAIN_GPT2 = {
    "n_inner": None,
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "layer_norm_epsilon": 1e-5,
    "add_cross_attention": False,
}
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class WeightsSource:
    spec: str  # as the user wrote it
    kind: str  # hub | hf | run
    architecture: dict  # model.* keys
    tokenizer: dict | None  # as in a run's tokenizer.json, when the source says which
    folder: Path | None = None  # hf and run sources (a hub source's folder is known after loading)

    def describe(self) -> str:
        return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.architecture.items())


def resolve(spec: str) -> WeightsSource:
    """What `spec` names, checked: raises ConfigError with a hint for anything unusable."""
    if spec in HUB_ARCHITECTURES:
        cached = cached_hub_config(spec)
        architecture = hf_architecture(read_json(cached), cached) if cached else dict(HUB_ARCHITECTURES[spec])
        return WeightsSource(spec, "hub", architecture, {"kind": "gpt2"})
    path = Path(spec).expanduser()
    if not path.exists():
        names = ", ".join(HUB_ARCHITECTURES)
        raise ConfigError(
            f"{spec} does not exist, and it is not a GPT-2 name.",
            f"use scratch, {names}, a Hugging Face GPT-2 folder or a gptbench run directory.",
        )
    config = read_json(path / "config.json")  # both kinds have one: Hugging Face's names a model_type
    if "model_type" in config:
        return _hf_source(spec, path, config)
    if isinstance(config.get("model"), dict):
        return _run_source(spec, path, config["model"])
    raise ConfigError(
        f"{path} has no readable config.json: it is neither a Hugging Face model folder nor a gptbench run.",
        "pass the folder that holds config.json and model.safetensors, or a run directory.",
    )


def cached_hub_config(name: str) -> Path | None:
    """The config.json of a GPT-2 name in the local Hugging Face cache, if it is there (never the network)."""
    from huggingface_hub import try_to_load_from_cache

    for repo in (HUB_REPOS[name], name):
        path = try_to_load_from_cache(repo, "config.json")
        if isinstance(path, str):
            return Path(path)
    return None


def is_pretrained(spec: str) -> bool:
    """A GPT-2 name or a Hugging Face folder (and not a gptbench run directory)."""
    return spec in HUB_ARCHITECTURES or "model_type" in read_json(Path(spec).expanduser() / "config.json")


def _run_source(spec: str, path: Path, model: dict) -> WeightsSource:
    if not any((path / name).is_file() for name in (BEST_CKPT, LAST_CKPT)):
        raise ConfigError(
            f"The run {path} has no checkpoint yet.", "wait for its first eval (best.pt) or checkpoint (last.pt)."
        )
    # a run from before the modern options had the classic architecture
    architecture = {**CLASSIC, **{k: model[k] for k in ARCHITECTURE_KEYS if k in model}}
    return WeightsSource(spec, "run", architecture, read_json(path / TOKENIZER_FILE) or None, path)


def _hf_source(spec: str, path: Path, hf: dict) -> WeightsSource:
    architecture = hf_architecture(hf, path)
    if not any((path / name).is_file() for name in HF_WEIGHT_FILES):
        raise ConfigError(
            f"{path} has a config.json but no weights.", f"it needs one of: {', '.join(HF_WEIGHT_FILES)}."
        )
    from .data.hf_tokenizer import read_hf_tokenizer

    return WeightsSource(spec, "hf", architecture, read_hf_tokenizer(path), path)


def hf_architecture(hf: dict, where: Path | str) -> dict:
    """model.* keys from a transformers GPT2Config (config.json); ConfigError for anything else."""
    if hf.get("model_type") != "gpt2":
        raise ConfigError(
            f"{where} holds a {hf.get('model_type') or 'unknown'} model; gptbench loads GPT-2 models only.",
            'pass a folder whose config.json has "model_type": "gpt2" '
            "(e.g. one written by `gptbench export --format hf`).",
        )
    activation = HF_ACTIVATIONS.get(hf.get("activation_function", "gelu_new"))
    different = [
        k
        for k, plain in _HF_PLAIN_GPT2.items()
        if k in hf and hf[k] != plain and not (k == "n_inner" and hf[k] == 4 * hf.get("n_embd", 768))
    ]
    if activation is None:
        different.append("activation_function")
    if different:
        raise ConfigError(
            f"{where} is a GPT-2 variant gptbench's model cannot represent ({', '.join(sorted(different))}).",
            f"gptbench's GPT-2 has a 4x MLP, LayerNorm eps 1e-5 and activations {', '.join(HF_ACTIVATIONS)}.",
        )
    return {
        "n_layer": hf.get("n_layer", 12),
        "n_head": hf.get("n_head", 12),
        "n_embd": hf.get("n_embd", 768),
        "block_size": hf.get("n_positions", 1024),
        "vocab_size": hf.get("vocab_size", 50257),
        "bias": True,
        "activation": activation,
        **CLASSIC,
        "tie_embeddings": hf.get("tie_word_embeddings", True),
    }


def adopt_architecture(cfg: Config, explicit: dict[str, object]) -> WeightsSource | None:
    """Give cfg.model the architecture of cfg.model.init_from; checks the data's tokenizer fits.

    `explicit` holds the model.* keys the user set (by --set, a --config file or
    a recipe) with their values: those may not disagree with the source, except a smaller
    block_size, which crops the position embeddings (nanoGPT's crop_block_size).
    """
    if cfg.model.init_from == "scratch":
        return None
    try:
        source = resolve(cfg.model.init_from)
    except ConfigError as exc:
        raise ConfigError(f"model.init_from: {exc.message}", exc.hint) from None
    arch = source.architecture
    conflicts = [
        f"model.{k}={explicit[f'model.{k}']}"
        for k in ARCHITECTURE_KEYS
        if f"model.{k}" in explicit
        and k in arch
        and getattr(cfg.model, k) != arch[k]
        and not (k == "block_size" and cfg.model.block_size < arch[k])
    ]
    if conflicts:
        raise ConfigError(
            f"{', '.join(conflicts)} disagree{'s' if len(conflicts) == 1 else ''} with model.init_from={source.spec} "
            f"({source.describe()}).",
            "the architecture comes from the weights: drop those keys (from --set, --config or recipe=...; "
            "a smaller model.block_size is allowed).",
        )
    for key in ARCHITECTURE_KEYS:
        if key in arch and not (key == "block_size" and "model.block_size" in explicit):
            setattr(cfg.model, key, arch[key])
    kind = (source.tokenizer or {}).get("kind")
    if kind and kind != cfg.data.tokenizer:
        raise ConfigError(
            f"model.init_from={source.spec} reads {kind} tokens, but data.tokenizer={cfg.data.tokenizer}.",
            f"add --set data.tokenizer={kind}" + (" (the gpt2-124m preset has it)." if kind == "gpt2" else "."),
        )
    return source
