"""Weights out: `python -m workbench.engine.export --run-dir D --format hf|llmc --out DIR`.

- hf: a folder `transformers.AutoModelForCausalLM.from_pretrained` loads as a
  GPT2LMHeadModel (config.json + model.safetensors) with the run's tokenizer
  (see hf_tokenizer.py). transformers keeps GPT-2's Conv1D layout, (in, out),
  hence the transposes; a tied head is the embedding, so only an untied one
  is stored. GPT2LMHeadModel also takes relu2 (ReLU squared) and an untied
  head; the other modern options have no exact transformers equivalent (the
  Llama family has RoPE and RMSNorm, but a gated MLP), and are refused.
- llmc: llm.c's model file (train_gpt2.py's write_model: a 256-int32 header,
  then every parameter in fp32, grouped by kind across layers, the vocabulary
  padded to a multiple of 128) and its tokenizer file (write_tokenizer), so
  llm.c's train_gpt2.c / .cu can evaluate or continue the model.

Both need the biases GPT-2 has: a model trained with model.bias=false exports
zeros there, which computes exactly the same function.

Runs as a subprocess of `gptbench export` (the CLI never imports torch); it
speaks the event protocol on stdout: `log` lines, or one `error`.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import torch

from ..config import ConfigError
from ..data.hf_tokenizer import write_hf_tokenizer
from ..data.tokenizers import GPT2Tokenizer, Tokenizer
from ..process_frame import EventWriter, run_process
from ..runs import require_run_dir
from ..weights_source import ACTIVATION_TO_HF
from .model import GPT, HF_CONV1D_WEIGHTS
from .sampler import load_run

LLMC_MODEL_MAGIC, LLMC_MODEL_VERSION_FP32 = 20240326, 3
LLMC_TOKENIZER_MAGIC, LLMC_TOKENIZER_VERSION = 20240328, 2


# model.* values GPT2LMHeadModel computes exactly, and why the others do not map
GPT2_OPTIONS = {
    "position": (("learned",), "transformers' RoPE models (Llama, Qwen, ...) gate their MLP, gptbench's does not"),
    "norm": (("layernorm",), "transformers' RMSNorm models (Llama, Qwen, ...) gate their MLP, gptbench's does not"),
    "qk_norm": ((False,), "transformers' QK-norm models (Qwen3, OLMo 2) give it a learned gain and gate their MLP"),
    "logit_softcap": ((0.0,), "transformers' soft-capping models (Gemma 2) differ in norms, MLP and embedding scale"),
}
# llm.c implements GPT-2 itself: GELU (the exact one is close enough to warn about, below), a tied head
LLMC_OPTIONS = {
    **{key: (allowed, "llm.c implements GPT-2's architecture alone") for key, (allowed, _) in GPT2_OPTIONS.items()},
    "activation": (("gelu_tanh", "gelu"), "llm.c's GPT-2 computes GELU"),
    "tie_embeddings": ((True,), "llm.c's GPT-2 ties its head to the token embedding"),
}


def refuse_unsupported(model: GPT, fmt: str, options: dict[str, tuple]) -> None:
    """ConfigError naming the first model option the format cannot represent."""
    for key, (allowed, why) in options.items():
        value = getattr(model.config, key)
        if value not in allowed:
            shown = str(value).lower() if isinstance(value, bool) else value
            raise ConfigError(
                f"--format {fmt} has no equivalent of model.{key}={shown}: {why}.",
                "export a model trained with recipe=classic (or without that option), or use the checkpoint "
                "with gptbench sample / eval.",
            )


def gpt2_tensors(model: GPT) -> dict[str, torch.Tensor]:
    """Every GPT-2 parameter under its transformers name, in nn.Linear layout (out, in).

    The embedding keeps only the real vocabulary rows; absent biases are zeros.
    """
    cfg, ours = model.config, model.state_dict()
    C = cfg.n_embd

    def bias(name: str, size: int) -> torch.Tensor:
        return ours[name] if name in ours else torch.zeros(size)

    tensors = {
        "transformer.wte.weight": ours["transformer.wte.weight"][: cfg.vocab_size],
        "transformer.wpe.weight": ours["transformer.wpe.weight"],
    }
    for i in range(cfg.n_layer):
        h = f"transformer.h.{i}."
        for name, size in (
            ("ln_1", C),
            ("attn.c_attn", 3 * C),
            ("attn.c_proj", C),
            ("ln_2", C),
            ("mlp.c_fc", 4 * C),
            ("mlp.c_proj", C),
        ):
            tensors[f"{h}{name}.weight"] = ours[f"{h}{name}.weight"]
            tensors[f"{h}{name}.bias"] = bias(f"{h}{name}.bias", size)
    tensors["transformer.ln_f.weight"] = ours["transformer.ln_f.weight"]
    tensors["transformer.ln_f.bias"] = bias("transformer.ln_f.bias", C)
    if not cfg.tie_embeddings:
        tensors["lm_head.weight"] = ours["lm_head.weight"][: cfg.vocab_size]
    # fp32 copies: independent storage (safetensors refuses shared tensors), CPU, contiguous
    return {k: v.detach().to("cpu", torch.float32).clone() for k, v in tensors.items()}


def export_hf(model: GPT, tokenizer: Tokenizer, out: Path) -> list[str]:
    from safetensors.torch import save_file

    refuse_unsupported(model, "hf", GPT2_OPTIONS)
    cfg = model.config
    tensors = {k: v.t().contiguous() if k.endswith(HF_CONV1D_WEIGHTS) else v for k, v in gpt2_tensors(model).items()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    eot = GPT2Tokenizer.eot if isinstance(tokenizer, GPT2Tokenizer) else None
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_embd": cfg.n_embd,
        "n_positions": cfg.block_size,
        "vocab_size": cfg.vocab_size,
        "activation_function": ACTIVATION_TO_HF[cfg.activation],
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "tie_word_embeddings": cfg.tie_embeddings,
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "torch_dtype": "float32",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    lines = [
        f"wrote {out / 'config.json'} and {out / 'model.safetensors'} "
        f"(GPT2LMHeadModel, {cfg.activation} = {config['activation_function']})"
    ]
    lines.append(f"tokenizer: {write_hf_tokenizer(tokenizer, out, cfg.block_size)}")
    if tokenizer.name == "digits":
        lines.append(
            "note: the tokenizer maps the ten digits only; the adder's prompt format (operands zero-padded "
            "to data.ndigit digits, the sum written reversed) is not part of it"
        )
    if not cfg.bias:
        lines.append(
            "the model has no biases (model.bias=false): they are exported as zeros, which computes the same function"
        )
    return lines


def export_llmc(model: GPT, tokenizer: Tokenizer, out: Path) -> list[str]:
    refuse_unsupported(model, "llmc", LLMC_OPTIONS)
    cfg = model.config
    tensors = gpt2_tensors(model)
    padded_vocab = math.ceil(cfg.vocab_size / 128) * 128  # llm.c's pad_vocab
    wte = tensors["transformer.wte.weight"]
    tensors["transformer.wte.weight"] = torch.cat([wte, wte.new_zeros(padded_vocab - cfg.vocab_size, cfg.n_embd)])
    header = torch.zeros(256, dtype=torch.int32)
    header[:8] = torch.tensor(
        [
            LLMC_MODEL_MAGIC,
            LLMC_MODEL_VERSION_FP32,
            cfg.block_size,
            cfg.vocab_size,
            cfg.n_layer,
            cfg.n_head,
            cfg.n_embd,
            padded_vocab,
        ]
    )
    # llm.c's order (write_tensors): each kind of tensor for all layers, then the next kind
    per_layer = [
        "ln_1.weight",
        "ln_1.bias",
        "attn.c_attn.weight",
        "attn.c_attn.bias",
        "attn.c_proj.weight",
        "attn.c_proj.bias",
        "ln_2.weight",
        "ln_2.bias",
        "mlp.c_fc.weight",
        "mlp.c_fc.bias",
        "mlp.c_proj.weight",
        "mlp.c_proj.bias",
    ]
    order = [
        "transformer.wte.weight",
        "transformer.wpe.weight",
        *(f"transformer.h.{i}.{name}" for name in per_layer for i in range(cfg.n_layer)),
        "transformer.ln_f.weight",
        "transformer.ln_f.bias",
    ]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "model.bin", "wb") as f:
        f.write(header.numpy().tobytes())
        for name in order:
            f.write(tensors[name].numpy().tobytes())
    lines = [
        f"wrote {out / 'model.bin'} (llm.c fp32, version {LLMC_MODEL_VERSION_FP32}, "
        f"vocab padded {cfg.vocab_size} -> {padded_vocab})"
    ]
    write_llmc_tokenizer(tokenizer, out / "tokenizer.bin")
    lines.append(f"wrote {out / 'tokenizer.bin'} (llm.c tokenizer, {tokenizer.vocab_size} tokens)")
    if cfg.activation != "gelu_tanh":
        lines.append(
            "warning: llm.c computes GELU with the tanh approximation; this model was trained with the exact GELU "
            "(model.activation=gelu), so llm.c's outputs will differ slightly"
        )
    return lines


def write_llmc_tokenizer(tokenizer: Tokenizer, path: Path) -> None:
    """llm.c's tokenizer file (write_tokenizer): a header, then each token's bytes with a 1-byte length."""
    n = tokenizer.vocab_size
    eot = tokenizer.start_id  # llm.c starts its samples from this token, as gptbench does
    header = torch.zeros(256, dtype=torch.int32)
    header[:4] = torch.tensor([LLMC_TOKENIZER_MAGIC, LLMC_TOKENIZER_VERSION, n, eot])
    with open(path, "wb") as f:
        f.write(header.numpy().tobytes())
        for i in range(n):
            piece = (
                tokenizer.encoding.decode_single_token_bytes(i)
                if isinstance(tokenizer, GPT2Tokenizer)
                else tokenizer.decode([i]).encode()
            )
            f.write(struct.pack("<B", len(piece)) + piece)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m workbench.engine.export", description="Export a run's weights; events on stdout."
    )
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--format", required=True, choices=["hf", "llmc"])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    args = p.parse_args(argv)

    def export(events: EventWriter) -> None:
        run = load_run(require_run_dir(args.run_dir), args.checkpoint, "cpu")
        for line in (export_hf if args.format == "hf" else export_llmc)(run.model, run.tokenizer, args.out):
            events.emit("log", message=line)

    return run_process(export, bad_input="export")


if __name__ == "__main__":
    sys.exit(main())
