"""Weights in and out: transformers round trips, init_from, sampling pretrained sources, llm.c's layout.

Everything is offline: tiny random GPT2Configs built here stand in for GPT-2,
and a Hugging Face cache is filled by hand where a Hub name is under test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from command_line import gptbench, sets  # noqa: E402

from workbench.data.tokenizers import GPT2Tokenizer  # noqa: E402
from workbench.engine.sampler import load_run  # noqa: E402
from workbench.runs import read_events  # noqa: E402

TINY = [
    "model.n_layer=2",
    "model.n_head=2",
    "model.n_embd=32",
    "model.block_size=32",
    "train.batch_size=4",
    "train.eval_steps=2",
    "train.log_every=5",
    "train.warmup_steps=0",
]
SHAKESPEARE = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare" / "input.txt"


def tiny_hf_gpt2(folder: Path, seed: int = 0, **config) -> transformers.GPT2LMHeadModel:
    """A random GPT-2 with GPT-2's vocabulary, saved by transformers itself."""
    torch.manual_seed(seed)
    hf_config = transformers.GPT2Config(
        **{"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 64, "vocab_size": 50257, **config}
    )
    model = transformers.GPT2LMHeadModel(hf_config).eval()
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def char_run(tmp_path_factory, cache_dir) -> Path:
    """A char-level run trained without biases and with the exact GELU: both must map over."""
    run_dir = tmp_path_factory.mktemp("interop") / "char"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench",
            "run",
            "shakespeare-char",
            "--headless",
            "--run-dir",
            str(run_dir),
            *sets(
                TINY
                + [
                    "model.bias=false",
                    "model.activation=gelu",
                    "train.max_steps=20",
                    "train.eval_every=10",
                    "train.lr=3e-3",
                ]
            ),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**__import__("os").environ, "XDG_CACHE_HOME": str(cache_dir)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return run_dir


def test_export_hf_loads_in_transformers_with_identical_logits_and_greedy_tokens(char_run, tmp_path):
    out = tmp_path / "hf"
    exported = gptbench("export", str(char_run), "--format", "hf", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "no biases" in exported.stdout and "65 characters" in exported.stdout
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert hf.config.activation_function == "gelu"  # model.activation=gelu, the exact one
    assert torch.all(hf.transformer.h[0].attn.c_attn.bias == 0)  # a bias-free model exports zeros

    run = load_run(char_run, "best", "cpu")
    ours, tokenizer = run.model, run.tokenizer
    prompt = "ROMEO:\nWhat light"
    ids = tokenizer.encode(prompt)
    assert hf_tok(prompt)["input_ids"] == ids and hf_tok.decode(ids) == prompt
    x = torch.tensor([ids])
    with torch.no_grad():
        expected, (logits, _) = hf(x).logits, ours(x)
    assert (logits - expected).abs().max().item() < 1e-4
    n = 32 - len(ids)  # transformers cannot slide past n_positions
    hf_greedy = hf.generate(x, max_new_tokens=n, do_sample=False, pad_token_id=0)[0, len(ids) :].tolist()
    our_greedy = torch.stack(list(ours.generate(x, n, temperature=0)), dim=1)[0].tolist()
    assert hf_greedy == our_greedy and len(our_greedy) == n

    # and back: sample the exported folder as a source, greedily, through the CLI
    from_run = gptbench("sample", str(char_run), "--prompt", prompt, "--temperature", "0", "--max-new-tokens", str(n))
    from_hf = gptbench("sample", str(out), "--prompt", prompt, "--temperature", "0", "--max-new-tokens", str(n))
    assert from_run.returncode == from_hf.returncode == 0, from_hf.stderr
    assert from_hf.stdout == from_run.stdout == prompt + tokenizer.decode(our_greedy) + "\n"


def test_init_from_hf_folder_gives_identical_logits_then_exports_gpt2_bpe(tmp_path, cache_dir):
    """transformers folder -> init_from -> a gptbench run -> export -> transformers and tiktoken agree."""
    source = tmp_path / "tiny-gpt2"
    hf = tiny_hf_gpt2(source)
    run_dir = tmp_path / "ft"
    out = gptbench(
        "run",
        "gpt2-124m",
        "--headless",
        "--run-dir",
        str(run_dir),
        *sets(
            [
                "profile=shakespeare",
                *TINY,
                f"model.init_from={source}",
                "train.tokens_per_step=0",
                "train.max_steps=1",
                "train.eval_every=1",
                "train.lr=1e-9",
                "train.min_lr=0",
                "train.weight_decay=0",
            ]
        ),
        env={"XDG_CACHE_HOME": str(cache_dir)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # the preset's 768-wide GPT-2 gave way to the folder's architecture; block_size 32 crops its 64 positions
    assert f"weights and architecture from {source}" in out.stdout
    logged = [
        e["message"] for e in read_events(run_dir) if e["event"] == "log" and e["message"].startswith("weights from")
    ]
    assert logged and "n_embd=32" in logged[0] and "cropped to block_size=32" in logged[0]
    saved = json.loads((run_dir / "config.json").read_text())["model"]
    assert (saved["n_layer"], saved["n_embd"], saved["block_size"], saved["init_from"]) == (2, 32, 32, str(source))

    run = load_run(run_dir, "last", "cpu")  # one step of lr 1e-9 later: the same function
    ours = run.model
    x = torch.randint(0, 50257, (2, 32))
    with torch.no_grad():
        assert (ours(x)[0] - hf(x).logits).abs().max().item() < 1e-4

    exported = tmp_path / "hf"
    assert (
        gptbench("export", str(run_dir), "--format", "hf", "--out", str(exported), "--checkpoint", "last").returncode
        == 0
    )
    hf_tok = transformers.AutoTokenizer.from_pretrained(exported, local_files_only=True)
    text = SHAKESPEARE.read_text()[:20000] + " naïve café 🙂 日本語 <|endoftext|>  \n\t"
    assert hf_tok(text)["input_ids"] == GPT2Tokenizer().encode(text)  # vocab.json + merges.txt from the vendored ranks
    assert hf_tok.decode(GPT2Tokenizer().encode(text)) == text
    again = transformers.AutoModelForCausalLM.from_pretrained(exported, local_files_only=True).eval()
    with torch.no_grad():
        assert (again(x).logits - ours(x)[0]).abs().max().item() < 1e-4
    assert again.config.eos_token_id == 50256 and again.config.activation_function == "gelu_new"


def fill_hub_cache(hub_cache: Path, repo: str, files: Path) -> None:
    """The layout huggingface_hub keeps: refs/main names a snapshot folder holding the files."""
    folder = hub_cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in files.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())


def test_sample_gpt2_uses_the_cached_copy_offline(tmp_path):
    """`gptbench sample gpt2` as nanoGPT's sample.py: the Hub name resolves to the local cache, no network."""
    files = tmp_path / "files"
    hf = tiny_hf_gpt2(files, n_positions=1024)
    # The Hub's original gpt2 files were saved from GPT2Model: keys without "transformer."
    from safetensors.torch import load_file, save_file

    state = load_file(files / "model.safetensors")
    save_file({k.removeprefix("transformer."): v.contiguous() for k, v in state.items()}, files / "model.safetensors")
    from workbench.data.hf_tokenizer import write_hf_tokenizer

    write_hf_tokenizer(GPT2Tokenizer(), files, 1024)
    hub = tmp_path / "hub"
    fill_hub_cache(hub, "openai-community/gpt2", files)

    out = gptbench(
        "sample",
        "gpt2",
        "--prompt",
        "Hello, I'm a language model,",
        "--temperature",
        "0",
        "--max-new-tokens",
        "8",
        env={"HF_HUB_CACHE": str(hub)},
    )
    assert out.returncode == 0, out.stderr
    ids = GPT2Tokenizer().encode("Hello, I'm a language model,")
    expected = hf.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, pad_token_id=0)[
        0, len(ids) :
    ].tolist()
    assert out.stdout == "Hello, I'm a language model," + GPT2Tokenizer().decode(expected) + "\n"

    missing = gptbench("sample", "gpt2-xl", "--prompt", "Hi", env={"HF_HUB_CACHE": str(hub)})
    said = " ".join(missing.stderr.split())
    assert missing.returncode == 2 and "Traceback" not in said
    assert "gpt2-xl is not in the Hugging Face cache" in said and "hint:" in said


def test_llmc_export_writes_llmc_header_and_parameter_order(char_run, tmp_path):
    out = tmp_path / "llmc"
    exported = gptbench("export", str(char_run), "--format", "llmc", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "exact GELU" in exported.stdout  # llm.c only has the tanh one: say so
    run = load_run(char_run, "best", "cpu")
    model, tokenizer = run.model, run.tokenizer
    cfg = model.config
    raw = (out / "model.bin").read_bytes()
    header = np.frombuffer(raw[:1024], dtype=np.int32)
    assert header[:8].tolist() == [20240326, 3, cfg.block_size, 65, cfg.n_layer, cfg.n_head, cfg.n_embd, 128]
    assert not header[8:].any()
    params = np.frombuffer(raw[1024:], dtype=np.float32)
    C, L, Vp, T = cfg.n_embd, cfg.n_layer, 128, cfg.block_size
    # llm.c's ParameterTensors sizes, in its order
    sizes = [
        Vp * C,
        T * C,
        L * C,
        L * C,
        L * 3 * C * C,
        L * 3 * C,
        L * C * C,
        L * C,
        L * C,
        L * C,
        L * 4 * C * C,
        L * 4 * C,
        L * C * 4 * C,
        L * C,
        C,
        C,
    ]
    assert params.size == sum(sizes)
    offsets = np.cumsum([0, *sizes])
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    wte = params[: Vp * C].reshape(Vp, C)
    np.testing.assert_array_equal(wte[:65], state["transformer.wte.weight"][:65])
    assert not wte[65:].any()  # llm.c pads the vocabulary with zero rows
    qkvw = params[offsets[4] : offsets[5]].reshape(L, 3 * C, C)
    np.testing.assert_array_equal(qkvw[1], state["transformer.h.1.attn.c_attn.weight"])
    assert not params[offsets[5] : offsets[6]].any()  # no biases in this model: zeros
    np.testing.assert_array_equal(params[offsets[14] : offsets[15]], state["transformer.ln_f.weight"])

    tok = (out / "tokenizer.bin").read_bytes()
    assert np.frombuffer(tok[:16], dtype=np.int32).tolist() == [20240328, 2, 65, tokenizer.start_id]
    first = tok[1024:]
    assert first[0] == 1 and first[1:2].decode() == tokenizer.decode([0])


def test_init_from_and_export_bad_input_get_a_sentence_and_a_hint(char_run, tmp_path):
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    cases = {
        (
            "run",
            "shakespeare-char",
            "--headless",
            "--set",
            f"model.init_from={tmp_path / 'nope'}",
        ): "does not exist, and it is not a GPT-2 name",
        (
            "run",
            "shakespeare-char",
            "--headless",
            "--set",
            "model.init_from=gpt3",
        ): "gpt3 does not exist, and it is not a GPT-2 name",
        (
            "run",
            "shakespeare-char",
            "--headless",
            "--set",
            f"model.init_from={llama}",
        ): "holds a llama model; gptbench loads GPT-2 models only",
        (
            "run",
            "shakespeare-char",
            "--headless",
            "--set",
            f"model.init_from={weightless}",
        ): "has a config.json but no weights",
        (
            "run",
            "shakespeare-char",
            "--headless",
            "--set",
            f"model.init_from={no_config}",
        ): "has no readable config.json",
        (
            "run",
            "gpt2-124m",
            "--headless",
            "--set",
            "model.init_from=gpt2",
            "--set",
            "model.n_layer=3",
        ): "model.n_layer=3 disagrees with model.init_from=gpt2",
        (
            "run",
            "shakespeare-char",
            "--headless",
            "--set",
            "model.init_from=gpt2",
        ): "reads gpt2 tokens, but data.tokenizer=char",
        ("sample", str(tmp_path / "nope")): "does not exist, and it is not a GPT-2 name",
        ("export", str(tmp_path / "nope"), "--format", "hf", "--out", str(tmp_path / "o")): "does not exist",
        (
            "export",
            str(char_run),
            "--format",
            "onnx",
            "--out",
            str(tmp_path / "o"),
        ): "--format must be one of hf, llmc, csv, tensorboard",
        (
            "export",
            str(char_run),
            "--format",
            "hf",
            "--out",
            str(char_run),
        ): "already exists and is not an empty folder",
        ("export", str(char_run), "--format", "csv", "--out", str(char_run / "config.json")): "already exists",
        (
            "export",
            str(char_run),
            "--format",
            "llmc",
            "--out",
            str(tmp_path / "o"),
            "--checkpoint",
            "first",
        ): "--checkpoint must be best or last",
    }
    for args, words in cases.items():
        out = gptbench(*args)
        said = " ".join(out.stderr.split())  # as one line: Rich wraps at the terminal's width
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert words in said and "hint:" in said and "Traceback" not in said, (args, out.stderr)
