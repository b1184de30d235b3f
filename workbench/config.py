"""Typed run configuration: three dataclass sections that become dotted keys.

A preset is a TOML file with `[model]`, `[data]` and `[train]` tables and
optional `[profiles.NAME.*]` tables that override them (a CPU profile, a GPU
profile, a speed-run recipe). Users change anything with `--set train.lr=3e-4`.

Config is data: values are parsed by the type of the field they land in, never
evaluated. Every mistake a user can make ends in a `ConfigError` that names the
key, the bad value and what is allowed.

This module is plain Python (no torch): the CLI and the UI validate with it
before anything heavy starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A user-facing configuration mistake: one sentence plus a hint."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} Hint: {self.hint}" if self.hint else self.message


@dataclass
class ModelConfig:
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256
    vocab_size: int = 0  # 0: taken from the data's tokenizer at start-up
    dropout: float = 0.0
    bias: bool = True
    # gelu_tanh: GPT-2's tanh approximation (needed to match GPT-2 weights);
    # gelu: the exact one, ~10% faster per CPU step for models trained from scratch.
    activation: str = "gelu_tanh"
    # scratch: random init. gpt2, gpt2-medium, gpt2-large, gpt2-xl (the Hugging Face
    # Hub, its local cache first) or a path (a Hugging Face GPT-2 folder, or a
    # gptbench run directory): start from those weights, with their architecture.
    init_from: str = "scratch"

    @property
    def padded_vocab_size(self) -> int:
        # Matmuls are fastest when the LM head's width is a multiple of 64
        # (50257 -> 50304 gives GPT-2 a free ~25% on the head).
        return math.ceil(self.vocab_size / 64) * 64 if self.vocab_size else 0


@dataclass
class DataConfig:
    kind: str = "text"  # addition | text
    tokenizer: str = "char"  # digits | char | gpt2
    path: str = ""  # text file, folder of .txt, or token shards; "" = tiny Shakespeare
    ndigit: int = 2  # addition: digits per operand
    holdout: int = 500  # addition: problems held out from training
    val_fraction: float = 0.1  # text: the last fraction of the tokens is the val split
    on_device: bool | None = None  # text: keep the corpus on the device; None (auto): up to 2**30 tokens


@dataclass
class TrainConfig:
    batch_size: int | None = 12  # sequences per micro-step per process; None (auto): the largest that fits
    grad_accum: int = 0  # micro-steps per optimizer step; 0: derive from tokens_per_step
    tokens_per_step: int = 0  # global tokens per optimizer step; 0: one micro-step
    max_steps: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | wsd (warmup, stable, decay) | constant (after warmup)
    decay_fraction: float = 0.2  # wsd: the last fraction of max_steps decays linearly to min_lr
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 turns clipping off
    eval_every: int = 250
    eval_steps: int = 20  # val batches per eval
    log_every: int = 10
    progress_every_s: float = 5.0  # a long step sends a progress event (micro-step i of n) at least this often
    step_event_every_s: float = 30.0  # and a step event comes at least this often, whatever log_every says
    ckpt_every: int = 0  # save last.pt every N steps; 0: at every eval (and always at the end)
    keep_last: int = 0  # also keep the N most recent step checkpoints as ckpt-STEP.pt (0: none)
    threads: int = 0  # CPU: torch threads per process; 0: the cores available, shared among gptbench's torch processes
    seed: int = 1337
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16 (autocast dtype)
    compile: bool | None = None  # None (auto): on where it pays (CUDA), off elsewhere
    compile_mode: str = "default"  # default | max-autotune | reduce-overhead
    target_val_loss: float = 0.0  # stop once val loss <= this (0: off)
    target_accuracy: float = 0.0  # stop once the task accuracy >= this (0: off)
    eval_tasks: list[str] = field(default_factory=list)  # at every eval also: hellaswag, ppl (see engine/tasks)
    eval_tasks_limit: int = 0  # examples per eval task (0: all; HellaSwag has 10,042)


@dataclass
class LogConfig:
    """Where metrics go besides events.jsonl (optional extras, see metric_sinks.py)."""

    tensorboard: bool = False  # event files in RUN_DIR/tensorboard
    wandb: str = ""  # a W&B project name ("" = off); WANDB_MODE=offline is honoured
    trackio: str = ""  # a trackio project name ("" = off)


# log.KEY -> the package that sink needs (optional extras of the same names)
LOG_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}

SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "log": LogConfig}

CHOICES = {
    "data.kind": ("addition", "text"),
    "data.tokenizer": ("digits", "char", "gpt2"),
    "model.activation": ("gelu_tanh", "gelu"),
    "train.dtype": ("auto", "float32", "bfloat16", "float16"),
    "train.compile_mode": ("default", "max-autotune", "reduce-overhead"),
    "train.schedule": ("cosine", "wsd", "constant"),
    "train.eval_tasks": ("hellaswag", "ppl"),  # each element of the list
}


@dataclass
class Config:
    preset: str = ""
    profile: str = "default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        cfg = cls(preset=d.get("preset", ""), profile=d.get("profile", "default"))
        for section, values in d.items():
            if section in SECTIONS:
                for key, value in values.items():
                    set_value(cfg, f"{section}.{key}", value)
        return cfg

    def grad_accum_steps(self, world_size: int = 1) -> int:
        """Micro-steps per optimizer step on each process (batch_size must be known)."""
        t = self.train
        if t.batch_size is None:
            raise ValueError("train.batch_size=auto is resolved by the trainer on its device first")
        if t.grad_accum:
            return t.grad_accum
        if not t.tokens_per_step:
            return 1
        per_micro = t.batch_size * self.model.block_size * world_size
        if t.tokens_per_step % per_micro:
            raise ConfigError(
                f"train.tokens_per_step={t.tokens_per_step} is not a multiple of "
                f"batch_size*block_size*processes = {per_micro}.",
                f"use a multiple of {per_micro}, e.g. {max(1, round(t.tokens_per_step / per_micro)) * per_micro}.",
            )
        return t.tokens_per_step // per_micro

    def tokens_per_step(self, world_size: int = 1) -> int:
        if self.train.batch_size is None:  # auto: the micro-batches add up to tokens_per_step
            return self.train.tokens_per_step
        return self.train.batch_size * self.model.block_size * world_size * self.grad_accum_steps(world_size)


def all_keys() -> list[str]:
    keys = ["profile"]
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def _field_type(section_cls: type, name: str) -> Any:
    return typing.get_type_hints(section_cls)[name]


def parse_value(key: str, raw: Any, typ: Any) -> Any:
    """Turn a string (from --set) or a TOML value into the field's type."""
    if typing.get_origin(typ) is list:
        return [parse_value(key, item, typing.get_args(typ)[0]) for item in _list_items(key, raw)]
    optional = typing.get_origin(typ) in (typing.Union, types.UnionType) and type(None) in typing.get_args(typ)
    if optional:
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("auto", "none", "")):
            return None
        typ = next(a for a in typing.get_args(typ) if a is not type(None))
    if typ is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        allowed = "true or false" + (" or auto" if optional else "")
        raise ConfigError(f"{key} must be {allowed}, got {raw!r}.", f"try --set {key}=true")
    if typ is int:
        if isinstance(raw, bool):
            raise ConfigError(f"{key} must be an integer, got {raw!r}.", f"try --set {key}=100")
        try:
            value = float(raw) if isinstance(raw, str) and ("e" in raw.lower() or "." in raw) else raw
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be an integer, got {raw!r}.", f"try --set {key}=100") from None
    if typ is float:
        try:
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {raw!r}.", f"try --set {key}=3e-4") from None
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {raw!r}.", f"try --set {key}=3e-4")
        return value
    return str(raw)


def _list_items(key: str, raw: Any) -> list:
    """A TOML array as it is; from --set, comma-separated words ("hellaswag,ppl"), brackets and quotes optional."""
    if isinstance(raw, (list, tuple)):
        return list(raw)
    if not isinstance(raw, str):
        raise ConfigError(f"{key} must be a list, got {raw!r}.", f"try --set {key}=a,b (empty for none)")
    text = raw.strip().removeprefix("[").removesuffix("]")
    items = [part.strip().strip("'\"").strip() for part in text.split(",")]
    return [] if items in ([""], ["none"]) else items


def unknown_key_error(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.5)
    if not close:  # "lr" -> "train.lr": match on the last part as well
        by_leaf = {k.split(".")[-1]: k for k in all_keys()}
        leaf = difflib.get_close_matches(key.split(".")[-1], list(by_leaf), n=1, cutoff=0.6)
        close = [by_leaf[leaf[0]]] if leaf else []
    hint = f"did you mean {close[0]}?" if close else "keys look like model.n_layer, data.path, train.lr (see README)."
    return ConfigError(f"Unknown config key {key!r}.", hint)


def set_value(cfg: Config, key: str, raw: Any) -> None:
    """Set one dotted key, parsing the value by the field's type."""
    if key == "profile":
        cfg.profile = str(raw)
        return
    section, _, name = key.partition(".")
    cls = SECTIONS.get(section)
    if cls is None or name not in {f.name for f in dataclasses.fields(cls)}:
        raise unknown_key_error(key)
    value = parse_value(key, raw, _field_type(cls, name))
    for element in value if isinstance(value, list) else [value]:
        if key in CHOICES and element not in CHOICES[key]:
            what = "each element of " if isinstance(value, list) else ""
            raise ConfigError(
                f"{what}{key} must be one of {', '.join(CHOICES[key])}, got {element!r}.",
                f"try --set {key}={CHOICES[key][0]}",
            )
    setattr(getattr(cfg, section), name, value)


def parse_override(text: str) -> tuple[str, str]:
    """`train.lr=3e-4` -> ("train.lr", "3e-4")."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"Override {text!r} is not of the form key=value.", "write it like --set train.lr=3e-4")
    return key.strip(), value.strip()


def apply_table(cfg: Config, table: dict, origin: str) -> None:
    """Apply a TOML-shaped dict ({"model": {...}, ...}) on top of cfg."""
    for section, values in table.items():
        if section not in SECTIONS or not isinstance(values, dict):
            raise ConfigError(
                f"{origin}: unknown section [{section}].",
                "sections are [model], [data], [train], [log] and [profiles.NAME].",
            )
        for name, value in values.items():
            set_value(cfg, f"{section}.{name}", value)


def validate(cfg: Config) -> None:
    """Checks that need no data and no torch. Raises ConfigError."""
    m, d, t = cfg.model, cfg.data, cfg.train
    positive = {
        "model.n_layer": m.n_layer,
        "model.n_head": m.n_head,
        "model.n_embd": m.n_embd,
        "model.block_size": m.block_size,
        "train.max_steps": t.max_steps,
        "train.eval_every": t.eval_every,
        "train.eval_steps": t.eval_steps,
        "train.log_every": t.log_every,
    }
    if t.batch_size is not None:
        positive["train.batch_size"] = t.batch_size
    elif not t.tokens_per_step or t.grad_accum:
        raise ConfigError(
            "train.batch_size=auto needs train.tokens_per_step (the global batch the micro-batches add up to) "
            "and no fixed train.grad_accum.",
            "e.g. --set train.tokens_per_step=524288, or give a number: --set train.batch_size=16",
        )
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key} must be at least 1, got {value}.", f"try --set {key}=1 or more")
    if m.n_embd % m.n_head:
        raise ConfigError(
            f"model.n_embd={m.n_embd} is not divisible by model.n_head={m.n_head}.",
            f"pick n_embd a multiple of {m.n_head} (e.g. {m.n_head * max(1, m.n_embd // m.n_head)}) or change n_head.",
        )
    if not 0.0 <= m.dropout < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {m.dropout}.", "try --set model.dropout=0.1")
    if not 0.0 < d.val_fraction < 1.0:
        raise ConfigError(
            f"data.val_fraction must be between 0 and 1, got {d.val_fraction}.", "try --set data.val_fraction=0.1"
        )
    if d.kind == "addition":
        if not 1 <= d.ndigit <= 9:
            raise ConfigError(f"data.ndigit must be between 1 and 9, got {d.ndigit}.", "try --set data.ndigit=2")
        if d.tokenizer != "digits":
            raise ConfigError(
                f"data.kind=addition needs data.tokenizer=digits, got {d.tokenizer!r}.",
                "try --set data.tokenizer=digits",
            )
        if m.block_size < 3 * d.ndigit:
            raise ConfigError(
                f"model.block_size={m.block_size} is too small for {d.ndigit}-digit addition.",
                f"use model.block_size >= {3 * d.ndigit}.",
            )
        total = 10 ** (2 * d.ndigit)
        if not 1 <= d.holdout < total:
            raise ConfigError(
                f"data.holdout must be between 1 and {total - 1}, got {d.holdout}.", "try --set data.holdout=500"
            )
    elif d.tokenizer == "digits":
        raise ConfigError(
            "data.tokenizer=digits only works with data.kind=addition.", "use data.tokenizer=char or gpt2 for text."
        )
    if t.eval_tasks and d.kind == "addition":
        raise ConfigError(
            "train.eval_tasks are text tasks; an addition run already reports its accuracy at every eval.",
            "drop them: --set train.eval_tasks=",
        )
    if "hellaswag" in t.eval_tasks and d.tokenizer != "gpt2":
        raise ConfigError(
            f"train.eval_tasks has hellaswag, which needs data.tokenizer=gpt2 (this run uses {d.tokenizer}).",
            "use --set train.eval_tasks=ppl, or train with data.tokenizer=gpt2",
        )
    if t.lr <= 0 or t.min_lr < 0 or t.min_lr > t.lr:
        raise ConfigError(
            f"train.lr must be > 0 and train.min_lr in [0, lr]; got lr={t.lr}, min_lr={t.min_lr}.",
            "try --set train.min_lr=1e-4",
        )
    if (
        min(t.warmup_steps, t.grad_accum, t.tokens_per_step, t.ckpt_every, t.keep_last, t.threads, t.eval_tasks_limit)
        < 0
    ):
        raise ConfigError(
            "train.warmup_steps, grad_accum, tokens_per_step, ckpt_every, keep_last, threads and eval_tasks_limit "
            "cannot be negative.",
            "use 0 to turn them off (threads: 0 = automatic)",
        )
    for key, value in {
        "train.progress_every_s": t.progress_every_s,
        "train.step_event_every_s": t.step_event_every_s,
    }.items():
        if value <= 0:
            raise ConfigError(f"{key} must be > 0 seconds, got {value}.", f"try --set {key}=5")
    if not 0.0 < t.decay_fraction <= 1.0:
        raise ConfigError(
            f"train.decay_fraction must be in (0, 1], got {t.decay_fraction}.", "try --set train.decay_fraction=0.2"
        )
    for key, value in {"train.beta1": t.beta1, "train.beta2": t.beta2}.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{key} must be in [0, 1), got {value}.", f"try --set {key}=0.95")
    for key, package in LOG_PACKAGES.items():
        if getattr(cfg.log, key) and importlib.util.find_spec(package) is None:
            off = "false" if key == "tensorboard" else '""'
            raise ConfigError(
                f"log.{key} needs the {package} package, which is not installed.",
                f'pip install "gptbench[{package}]", or leave it off (--set log.{key}={off}).',
            )
    device = t.device
    if not (device in ("auto", "cpu", "cuda", "mps") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps, got {device!r}.", "try --device cpu")
    if t.batch_size is None:
        if t.tokens_per_step % m.block_size:
            raise ConfigError(
                f"train.tokens_per_step={t.tokens_per_step} is not a multiple of model.block_size={m.block_size}.",
                f"use a multiple of {m.block_size}, "
                f"e.g. {max(1, round(t.tokens_per_step / m.block_size)) * m.block_size}.",
            )
    else:
        cfg.grad_accum_steps(1)  # tokens_per_step must split into micro-batches


def estimate_params(m: ModelConfig) -> int:
    """Parameters of the GPT, without position embeddings (as nanoGPT reports).

    Token embedding (tied with the LM head, padded vocab) + per block
    12*C^2 weights (attention 4*C^2, MLP 8*C^2) + biases and LayerNorms + final LN.
    """
    c = m.n_embd
    per_block = 12 * c * c + (13 * c if m.bias else 2 * c)
    return m.padded_vocab_size * c + m.n_layer * per_block + (2 * c if m.bias else c)


def flops_per_token(m: ModelConfig, n_params: int) -> int:
    """Training FLOPs per token, by the PaLM appendix B formula that nanoGPT uses."""
    return 6 * n_params + 12 * m.n_layer * m.n_embd * m.block_size


def to_toml(cfg: Config, description: str = "") -> str:
    """The config as a preset file: `gptbench run --config FILE` reads it back to the same Config."""
    lines = [f"description = {_toml_value(description)}", ""] if description else []
    for section in SECTIONS:
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in dataclasses.asdict(getattr(cfg, section)).items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if value is None:
        return '"auto"'  # TOML has no null; auto is what None means in this config
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # JSON's string escapes are TOML's basic-string escapes
