"""Typed run configuration: three dataclass sections that become dotted keys.

A preset is a TOML file with `[model]`, `[data]` and `[train]` tables and
optional `[profiles.NAME.*]` tables that override them (a CPU profile, a GPU
profile, a speed-run recipe). Users change anything with `--set train.lr=3e-4`.

Config is data: values are parsed by the type of the field they land in, never
evaluated. Every mistake a user can make ends in a `ConfigError` that names the
key, the bad value and what is allowed.

A key documents itself, in one line:

    beta1: float = setting(0.9, "AdamW beta1", within="[0, 1)")

Its field's type says what it takes (a `Literal[...]` lists the allowed
values); `setting()` gives its default, its one line of help (shown by
`gptbench presets NAME`, the app's config editor and README's key table), the
range of its values (`within`, checked by `validate` for every key, with one
shape of error) and whether `--resume` may change it (`resume`: fixed unless
the key says "changeable"). Checks that tie keys together stay code: a
section's `check()` within it, `Config.check()` across sections.

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
from typing import Any, Literal

from .tasks import TASKS, TEXT_TASKS


class ConfigError(ValueError):
    """A user-facing configuration mistake: one sentence plus a hint."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} Hint: {self.hint}" if self.hint else self.message


@dataclass(frozen=True)
class Range:
    """The interval a key's values lie in, written as in maths: "[0, 1)" takes 0 and not 1, "(0, inf)" any
    positive number, "[1, inf)" a count of at least one. A value of None ("auto") is never out of range."""

    text: str
    low: float
    high: float
    low_open: bool
    high_open: bool

    @classmethod
    def parse(cls, text: str) -> Range:
        low, _, high = text[1:-1].partition(",")
        if text[0] not in "[(" or text[-1] not in "])" or not high:
            raise ValueError(f"a range looks like [0, 1) or (0, inf), not {text!r}")
        return cls(text, float(low), float(high), text[0] == "(", text[-1] == ")")

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        """In words, for errors and hints: "at least 1", "> 0", "in [0, 1)"."""
        if self.high == math.inf:
            low = _toml_value(int(self.low) if self.low.is_integer() else self.low)
            return f"> {low}" if self.low_open else f"at least {low}"
        return f"in {self.text}"


Resume = Literal["fixed", "changeable"]


def setting(default: Any, help: str, within: str = "", resume: Resume = "fixed") -> Any:
    """A config key: its default, one line of help (shown by `gptbench presets NAME`, the app's config
    editor and README's key table), the range its values lie in (`within="[0, 1)"`, see Range; allowed
    values are the field's type, a `Literal`), and whether `--resume` may change it. A key is fixed on
    resume unless it says otherwise: a key forgotten there is refused, never silently changed."""
    metadata = {"help": help, "within": Range.parse(within) if within else None, "resume": resume}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


Activation = Literal["gelu_tanh", "gelu", "relu2"]
Position = Literal["learned", "rope"]
Norm = Literal["layernorm", "rmsnorm"]
Optimizer = Literal["adamw", "muon"]
DataKind = Literal["addition", "text"]
TokenizerName = Literal["digits", "char", "gpt2"]
Schedule = Literal["cosine", "wsd", "constant"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
CompileMode = Literal["default", "max-autotune", "reduce-overhead"]
LossKind = Literal["auto", "fused", "plain"]
TextTask = Literal[TEXT_TASKS]  # see tasks.py


@dataclass
class ModelConfig:
    n_layer: int = setting(6, "transformer blocks", within="[1, inf)")
    n_head: int = setting(6, "attention heads per block (n_embd must be a multiple)", within="[1, inf)")
    n_embd: int = setting(384, "embedding width", within="[1, inf)")
    block_size: int = setting(256, "context length in tokens", within="[1, inf)")
    vocab_size: int = setting(
        0, "0: taken from the data's tokenizer (padded to a multiple of 64 inside the model)", within="[0, inf)"
    )
    dropout: float = setting(0.0, "dropout probability", within="[0, 1)")
    bias: bool = setting(True, "biases in Linear layers and LayerNorms (GPT-2 has them)")
    activation: Activation = setting(
        "gelu_tanh",
        "gelu_tanh: GPT-2's approximation (needed for GPT-2 weights); gelu: exact, cheaper on CPUs; "
        "relu2: ReLU squared (Primer; the GPT-2 speedrun's MLP)",
    )
    position: Position = setting("learned", "learned: GPT-2's position table; rope: rotary embeddings in attention")
    norm: Norm = setting("layernorm", "layernorm (GPT-2) or rmsnorm (no mean, no bias)")
    qk_norm: bool = setting(False, "RMS-normalise queries and keys per head before attention")
    tie_embeddings: bool = setting(
        True, "the LM head shares the token embedding; false: a head of its own, zero-initialised"
    )
    logit_softcap: float = setting(0.0, "> 0: logits = cap * tanh(logits / cap); 0: off", within="[0, inf)")
    init_from: str = setting(
        "scratch",
        "scratch (random init), gpt2 ... gpt2-xl (the Hugging Face Hub, its cache first), a Hugging Face GPT-2 "
        "folder or a run directory: start from those weights, with their architecture (see Interop)",
    )

    @property
    def padded_vocab_size(self) -> int:
        # Matmuls are fastest when the LM head's width is a multiple of 64
        # (50257 -> 50304 gives GPT-2 a free ~25% on the head).
        return math.ceil(self.vocab_size / 64) * 64 if self.vocab_size else 0

    def check(self) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"model.n_embd={self.n_embd} is not divisible by model.n_head={self.n_head}.",
                f"pick n_embd a multiple of {self.n_head} (e.g. {self.n_head * max(1, self.n_embd // self.n_head)}) "
                "or change n_head.",
            )
        if self.position == "rope" and (self.n_embd // self.n_head) % 2:
            raise ConfigError(
                "model.position=rope rotates pairs of dimensions, and a head has "
                f"n_embd/n_head = {self.n_embd // self.n_head}.",
                "pick n_embd and n_head so that n_embd/n_head is even.",
            )


@dataclass
class DataConfig:
    kind: DataKind = setting("text", "what the model learns: minGPT's n-digit adder, or text")
    tokenizer: TokenizerName = setting(
        "char",
        "digits for addition; char: a vocab built from the text (saved in the run dir); gpt2: tiktoken's BPE, offline",
    )
    path: str = setting(
        "",
        "a text file, a folder of .txt, or GPT-2 token shards (nanoGPT train.bin/val.bin, llm.c .bin, "
        "build-nanogpt .npy); fineweb-edu = the shards `gptbench data fineweb-edu` prepared; "
        "empty = tiny Shakespeare, downloaded once and sha256-checked",
    )
    ndigit: int = setting(2, "addition: digits per operand", within="[1, 9]")
    holdout: int = setting(500, "addition: problems held out from training")
    val_fraction: float = setting(0.1, "text: the last fraction of the tokens is the val split", within="(0, 1)")
    on_device: bool | None = setting(
        None,
        "text: keep the corpus on the device (auto: up to 2^30 tokens); bigger ones stay memmapped and the next "
        "step's batches are read ahead on a thread",
    )

    def check(self) -> None:
        if self.kind == "addition":
            if self.tokenizer != "digits":
                raise ConfigError(
                    f"data.kind=addition needs data.tokenizer=digits, got {self.tokenizer!r}.",
                    "try --set data.tokenizer=digits",
                )
            total = 10 ** (2 * self.ndigit)
            if not 1 <= self.holdout < total:
                raise ConfigError(
                    f"data.holdout must be between 1 and {total - 1}, got {self.holdout}.",
                    "try --set data.holdout=500",
                )
        elif self.tokenizer == "digits":
            raise ConfigError(
                "data.tokenizer=digits only works with data.kind=addition.", "use data.tokenizer=char or gpt2 for text."
            )


@dataclass
class TrainConfig:
    # The optimizer state and the data position depend on seed, optimizer, weight_decay, beta1, beta2 and
    # dtype (the loss scale): those stay fixed on resume; the budget, schedule, cadence and machine may change.
    batch_size: int | None = setting(
        12,
        "sequences per micro-step per process; auto: the largest that fits, probed on the GPU; on a CPU the "
        "largest whose micro-step takes about 1.5 s (timed at start-up: requests wait for the next micro-step), "
        "16 at most; tokens_per_step kept exact",
        within="[1, inf)",
        resume="changeable",
    )
    grad_accum: int = setting(
        0, "micro-steps per optimizer step; 0: derived from tokens_per_step", within="[0, inf)", resume="changeable"
    )
    tokens_per_step: int = setting(
        0,
        "global tokens per optimizer step (gradient accumulation); 0: one micro-step",
        within="[0, inf)",
        resume="changeable",
    )
    max_steps: int = setting(2000, "optimizer steps to train", within="[1, inf)", resume="changeable")
    lr: float = setting(
        1e-3, "peak learning rate, reached after a linear warmup", within="(0, inf)", resume="changeable"
    )
    min_lr: float = setting(
        1e-4, "the learning rate at the end of the decay (at most lr)", within="[0, inf)", resume="changeable"
    )
    warmup_steps: int = setting(100, "steps of linear warmup", within="[0, inf)", resume="changeable")
    schedule: Schedule = setting(
        "cosine",
        "cosine: to min_lr at max_steps; wsd: warmup, stable, then a linear decay over the last decay_fraction; "
        "constant after warmup",
        resume="changeable",
    )
    decay_fraction: float = setting(
        0.2, "wsd: the last fraction of max_steps decays linearly to min_lr", within="(0, 1]", resume="changeable"
    )
    optimizer: Optimizer = setting(
        "adamw",
        "adamw, or muon: torch.optim.Muon (momentum 0.95, Nesterov) for the blocks' 2-D weight matrices at "
        "muon_lr, AdamW for the embedding, head, gains and biases at lr",
    )
    muon_lr: float = setting(
        0.02,
        "optimizer=muon: Muon's peak learning rate (train.lr stays AdamW's); same schedule",
        within="(0, inf)",
        resume="changeable",
    )
    weight_decay: float = setting(0.1, "AdamW weight decay (2-D weights only)", within="[0, inf)")
    beta1: float = setting(0.9, "AdamW beta1", within="[0, 1)")
    beta2: float = setting(0.99, "AdamW beta2", within="[0, 1)")
    grad_clip: float = setting(1.0, "clip the gradient norm to this (0: off)", within="[0, inf)", resume="changeable")
    eval_every: int = setting(250, "steps between evals (and the last step)", within="[1, inf)", resume="changeable")
    eval_steps: int = setting(20, "val batches per eval", within="[1, inf)", resume="changeable")
    log_every: int = setting(
        10, "steps per step event (loss, lr, tokens/sec ...)", within="[1, inf)", resume="changeable"
    )
    progress_every_s: float = setting(
        5.0,
        "a long step sends a progress event (micro-step i of n) at least this often",
        within="(0, inf)",
        resume="changeable",
    )
    step_event_every_s: float = setting(
        30.0,
        "and a step event comes at least this often, whatever log_every says",
        within="(0, inf)",
        resume="changeable",
    )
    ckpt_every: int = setting(
        0,
        "save last.pt every N steps; 0: at every eval (and always at the end)",
        within="[0, inf)",
        resume="changeable",
    )
    keep_last: int = setting(
        0,
        "also keep the N most recent last.pt states as ckpt-STEP.pt (0: none)",
        within="[0, inf)",
        resume="changeable",
    )
    threads: int = setting(
        0,
        "CPU threads per process; 0: OMP_NUM_THREADS if set, else the cores this process may use shared among "
        "the gptbench torch processes running",
        within="[0, inf)",
        resume="changeable",
    )
    seed: int = setting(1337, "the random seed (data order, init, dropout)")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps", resume="changeable")
    dtype: Dtype = setting(
        "auto",
        "autocast dtype; auto: bf16 on GPUs of compute capability 8.0+, fp16 with loss scaling on older ones, "
        "fp32 on CPU/MPS",
    )
    compile: bool | None = setting(
        None,
        "torch.compile(fullgraph=True); auto: on for CUDA and models of 5M+ parameters, where it pays",
        resume="changeable",
    )
    compile_mode: CompileMode = setting("default", "torch.compile's mode", resume="changeable")
    loss: LossKind = setting(
        "auto",
        "fused: the LM head and the cross-entropy a chunk of rows at a time, so the (B, T, vocab) logits never "
        "exist (one opaque op for torch.compile; soft-capped logits too); plain: the full logits and F.cross_entropy; "
        "auto: fused for now (on CUDA it is meant to pick what bench/gpu_leg.sh measures faster: CUDA_AUTO_LOSS in "
        "engine/loss.py)",
        resume="changeable",
    )
    target_val_loss: float = setting(0.0, "stop once val loss <= this (0: off)", within="[0, inf)", resume="changeable")
    target_accuracy: float = setting(
        0.0, "stop once the task accuracy >= this (0: off)", within="[0, 1]", resume="changeable"
    )
    eval_tasks: list[TextTask] = setting(
        [],
        "task metrics at every eval, e.g. hellaswag,ppl (a TOML array in presets; see Evals)",
        resume="changeable",
    )
    eval_tasks_limit: int = setting(
        0, "examples per eval task (0: all; HellaSwag has 10,042)", within="[0, inf)", resume="changeable"
    )

    def check(self) -> None:
        if self.batch_size is None and (not self.tokens_per_step or self.grad_accum):
            raise ConfigError(
                "train.batch_size=auto needs train.tokens_per_step (the global batch the micro-batches add up to) "
                "and no fixed train.grad_accum.",
                "e.g. --set train.tokens_per_step=524288, or give a number: --set train.batch_size=16",
            )
        if self.min_lr > self.lr:
            raise ConfigError(
                f"train.min_lr must be at most train.lr; got lr={self.lr}, min_lr={self.min_lr}.",
                f"try --set train.min_lr={self.lr / 10:g}",
            )
        device = self.device
        if not (device in ("auto", "cpu", "cuda", "mps") or (device.startswith("cuda:") and device[5:].isdigit())):
            raise ConfigError(
                f"train.device must be auto, cpu, cuda, cuda:N or mps, got {device!r}.", "try --device cpu"
            )


@dataclass
class LogConfig:
    """Where metrics go besides events.jsonl (optional extras, see metric_sinks.py)."""

    tensorboard: bool = setting(False, "TensorBoard event files in RUN_DIR/tensorboard", resume="changeable")
    wandb: str = setting("", 'a W&B project name ("": off); WANDB_MODE=offline is honoured', resume="changeable")
    trackio: str = setting("", 'a trackio project name ("": off)', resume="changeable")

    def check(self) -> None:
        for key, package in LOG_PACKAGES.items():
            if getattr(self, key) and importlib.util.find_spec(package) is None:
                off = "false" if key == "tensorboard" else '""'
                raise ConfigError(
                    f"log.{key} needs the {package} package, which is not installed.",
                    f'pip install "gptbench[{package}]", or leave it off (--set log.{key}={off}).',
                )


# log.KEY -> the package that sink needs (optional extras of the same names)
LOG_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}

SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "log": LogConfig}


@dataclass
class Config:
    preset: str = ""  # set by the preset, not a key
    # profile and recipe name what built the config; on resume the config is config.json's, not rebuilt
    profile: str = setting(
        "default", "the preset's profile whose [profiles.NAME.*] tables apply (e.g. cpu, gpu)", resume="changeable"
    )
    recipe: str = setting(
        "classic",
        "classic: the preset as written; modern: the preset's [recipes.modern.*] tables (rope, rmsnorm, qk_norm, "
        "relu2, softcap, Muon, an untied head for gpt2-124m; addition: Muon alone) on top of its profile; "
        "single --set keys win; `gptbench presets NAME` lists them",
        resume="changeable",
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        cfg = cls(preset=d.get("preset", ""), profile=d.get("profile", "default"), recipe=d.get("recipe", "classic"))
        for section, values in d.items():
            if section in SECTIONS:
                for key, value in values.items():
                    set_value(cfg, f"{section}.{key}", value)
        return cfg

    def grad_accum_steps(self, world_size: int = 1, micro_batch: int | None = None) -> int:
        """Micro-steps per optimizer step on each process. micro_batch: what the trainer chose for
        batch_size=auto (the config keeps "auto"); a fixed batch_size needs none."""
        t = self.train
        micro_batch = micro_batch or t.batch_size
        if micro_batch is None:
            raise ValueError("train.batch_size=auto is resolved by the trainer on its device first")
        if t.grad_accum:
            return t.grad_accum
        if not t.tokens_per_step:
            return 1
        per_micro = micro_batch * self.model.block_size * world_size
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

    def check(self) -> None:
        """The checks that span sections (each section checks itself first)."""
        m, d, t = self.model, self.data, self.train
        if d.kind == "addition" and m.block_size < 3 * d.ndigit:
            raise ConfigError(
                f"model.block_size={m.block_size} is too small for {d.ndigit}-digit addition.",
                f"use model.block_size >= {3 * d.ndigit}.",
            )
        if t.eval_tasks and d.kind == "addition":
            raise ConfigError(
                "train.eval_tasks are text tasks; an addition run already reports its accuracy at every eval.",
                "drop them: --set train.eval_tasks=",
            )
        for name in t.eval_tasks:
            needs = TASKS[name].tokenizer
            if needs and d.tokenizer != needs:
                others = ",".join(n for n in TEXT_TASKS if not TASKS[n].tokenizer) or "none"
                raise ConfigError(
                    f"train.eval_tasks has {name}, which needs data.tokenizer={needs} (this run uses {d.tokenizer}).",
                    f"use --set train.eval_tasks={others}, or train with data.tokenizer={needs}",
                )
        if t.batch_size is None:
            if t.tokens_per_step % m.block_size:
                raise ConfigError(
                    f"train.tokens_per_step={t.tokens_per_step} is not a multiple of model.block_size={m.block_size}.",
                    f"use a multiple of {m.block_size}, "
                    f"e.g. {max(1, round(t.tokens_per_step / m.block_size)) * m.block_size}.",
                )
        else:
            self.grad_accum_steps(1)  # tokens_per_step must split into micro-batches


def all_keys() -> list[str]:
    keys = [f.name for f in dataclasses.fields(Config) if f.metadata.get("help")]  # profile, recipe
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def _field_type(section_cls: type, name: str) -> Any:
    return typing.get_type_hints(section_cls)[name]


def _field(key: str) -> dataclasses.Field:
    """The dataclass field of a key: a section's ("train.lr"), or the top level's ("profile")."""
    section, _, name = key.rpartition(".")
    return {f.name: f for f in dataclasses.fields(SECTIONS[section] if section else Config)}[name]


def help_of(key: str) -> str:
    """The key's line of help ("" for a key without one)."""
    return _field(key).metadata.get("help", "")


def default_of(key: str) -> Any:
    f = _field(key)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def range_of(key: str) -> Range | None:
    """The interval the key's values lie in, from its field's `within`; None: any value of its type."""
    return _field(key).metadata.get("within")


def fixed_on_resume(key: str) -> bool:
    """Whether `--resume` refuses a new value for the key (its field's `resume`)."""
    return _field(key).metadata.get("resume", "fixed") == "fixed"


def value_of(cfg: Config, key: str) -> Any:
    section, _, name = key.rpartition(".")
    return getattr(getattr(cfg, section) if section else cfg, name)


def check_range(key: str, value: Any) -> None:
    """A ConfigError naming the key, the value and the range when the value lies outside its field's range."""
    within = range_of(key)
    if within is not None and value is not None and value not in within:
        raise ConfigError(f"{key} must be {within}, got {value}.", f"try --set {key}={_toml_value(default_of(key))}")


def key_help(key: str) -> str:
    """The key's help with its allowed values, as a TOML comment and the app's config editor show it."""
    allowed = choices(key)
    return help_of(key) + (f" ({' | '.join(allowed)})" if allowed else "")


def choices(key: str) -> tuple[str, ...] | None:
    """The values a key (each element, for a list) may take, from its Literal type; None: any of its type."""
    if "." not in key:  # a top-level key: a name the preset checks (presets.resolve)
        return None
    section, _, name = key.partition(".")
    typ = _field_type(SECTIONS[section], name)
    if typing.get_origin(typ) is list:
        typ = typing.get_args(typ)[0]
    return typing.get_args(typ) if typing.get_origin(typ) is Literal else None


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
    if "." not in key:  # a top-level key: a name the preset checks (presets.resolve)
        if key not in all_keys():
            raise unknown_key_error(key)
        setattr(cfg, key, str(raw))
        return
    section, _, name = key.partition(".")
    cls = SECTIONS.get(section)
    if cls is None or name not in {f.name for f in dataclasses.fields(cls)}:
        raise unknown_key_error(key)
    value = parse_value(key, raw, _field_type(cls, name))
    allowed = choices(key)
    for element in value if isinstance(value, list) else [value]:
        if allowed and element not in allowed:
            what = "each element of " if isinstance(value, list) else ""
            raise ConfigError(
                f"{what}{key} must be one of {', '.join(allowed)}, got {element!r}.", f"try --set {key}={allowed[0]}"
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
    """Checks that need no data and no torch: every key's range, each section's own checks, then those across
    sections. Raises ConfigError."""
    for key in all_keys():
        check_range(key, value_of(cfg, key))
    for section in SECTIONS:
        getattr(cfg, section).check()
    cfg.check()


def estimate_params(m: ModelConfig) -> int:
    """Parameters of the GPT, without position embeddings (as nanoGPT reports).

    Token embedding (padded vocab; the LM head too, unless untied) + per block
    12*C^2 weights (attention 4*C^2, MLP 8*C^2) + biases and norms + final norm.
    """
    c = m.n_embd
    biased = m.bias and m.norm == "layernorm"  # RMSNorm has a gain only
    per_block = 12 * c * c + (9 * c if m.bias else 0) + (4 * c if biased else 2 * c)
    head = 0 if m.tie_embeddings else m.padded_vocab_size * c
    return m.padded_vocab_size * c + head + m.n_layer * per_block + (2 * c if biased else c)


def flops_per_token(m: ModelConfig, n_params: int) -> int:
    """Training FLOPs per token, by the PaLM appendix B formula that nanoGPT uses."""
    return 6 * n_params + 12 * m.n_layer * m.n_embd * m.block_size


def to_toml(cfg: Config, description: str = "") -> str:
    """The config as a preset file, each key under its help as a comment: `gptbench run --config FILE`
    reads it back to the same Config."""
    lines = [f"description = {_toml_value(description)}", ""] if description else []
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for key, value in dataclasses.asdict(getattr(cfg, section)).items():
            lines.append(f"# {key_help(f'{section}.{key}')}")
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def keys_markdown() -> str:
    """README's table of config keys, made from the fields (see readme_tables.py)."""
    rows = ["| key | default | allowed | on resume | meaning |", "| --- | --- | --- | --- | --- |"]
    for key in all_keys():
        allowed, within = choices(key), range_of(key)
        allowed = ", ".join(f"`{v}`" for v in allowed) if allowed else f"`{within.text}`" if within else ""
        default = _toml_value(default_of(key))
        resume = "fixed" if fixed_on_resume(key) else "may change"
        rows.append(f"| `{key}` | `{default}` | {allowed} | {resume} | {help_of(key).replace('|', '/')} |")
    return "\n".join(rows)


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
