"""Evals: HellaSwag and perplexity checked against transformers' GPT-2 on the same
random weights, `gptbench eval` end to end, and task metrics during training."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from command_line import gptbench
from torch.nn import functional as F

from workbench.config import Config, ModelConfig
from workbench.data.hf_tokenizer import write_hf_tokenizer
from workbench.data.tokenizers import GPT2Tokenizer
from workbench.engine import checkpoint, train_state
from workbench.engine.model import GPT
from workbench.engine.tasks.hellaswag import HellaSwag
from workbench.engine.tasks.perplexity import Perplexity

transformers = pytest.importorskip("transformers")

BLOCK = 48  # short enough that the long example below is cut from the left


@pytest.fixture(scope="module")
def hf_model():
    """A tiny GPT-2 with random weights, built locally: no download."""
    config = transformers.GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        n_positions=BLOCK,
        vocab_size=50257,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def our_model(hf_model):
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=BLOCK, vocab_size=50257, bias=True)).eval()
    model.load_hf_gpt2_state_dict(hf_model.state_dict())
    return model


def shakespeare_lines(cache_dir) -> list[str]:
    text = (cache_dir / "gptbench" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if len(line.strip()) > 20]


@pytest.fixture(scope="module")
def hellaswag_file(tmp_path_factory, cache_dir):
    """24 examples in HellaSwag's jsonl format (contexts and endings from Shakespeare); one context is long."""
    lines, rng = shakespeare_lines(cache_dir), random.Random(0)
    path = tmp_path_factory.mktemp("hellaswag") / "hellaswag_val.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(24):
            ctx = " ".join(rng.sample(lines, 12 if i == 5 else 1))  # example 5: longer than block_size
            endings = [rng.choice(lines)[: rng.randint(10, 60)] for _ in range(4)]
            f.write(
                json.dumps(
                    {
                        "ind": i,
                        "activity_label": "Shakespeare",
                        "ctx_a": ctx,
                        "ctx_b": "",
                        "ctx": ctx,
                        "split": "val",
                        "split_type": "indomain",
                        "label": rng.randrange(4),
                        "endings": endings,
                        "source_id": f"test~{i}",
                    }
                )
                + "\n"
            )
    return path


def reference_hellaswag(hf_model, path) -> list[tuple[bool, bool]]:
    """(right by summed loss, right by mean loss) per example: build-nanogpt's render_example and
    evaluate, one example at a time on transformers' model, rows cut from the left to n_positions."""
    enc, results = GPT2Tokenizer().encoding, []
    for line in path.read_text(encoding="utf-8").splitlines():
        example = json.loads(line)
        ctx_tokens = enc.encode(example["ctx"])
        tok_rows, mask_rows = [], []
        for end in example["endings"]:
            end_tokens = enc.encode(" " + end)
            tok_rows.append((ctx_tokens + end_tokens)[-BLOCK:])
            mask_rows.append(([0] * len(ctx_tokens) + [1] * len(end_tokens))[-BLOCK:])
        max_len = max(len(row) for row in tok_rows)
        tokens = torch.zeros((4, max_len), dtype=torch.long)
        mask = torch.zeros((4, max_len), dtype=torch.long)
        for i, (tok_row, mask_row) in enumerate(zip(tok_rows, mask_rows)):
            tokens[i, : len(tok_row)] = torch.tensor(tok_row)
            mask[i, : len(mask_row)] = torch.tensor(mask_row)
        with torch.no_grad():
            logits = hf_model(input_ids=tokens).logits
        shift_logits = logits[..., :-1, :].contiguous()
        shift_tokens = tokens[..., 1:].contiguous()
        shift_losses = F.cross_entropy(
            shift_logits.view(-1, shift_logits.size(-1)), shift_tokens.view(-1), reduction="none"
        )
        shift_losses = shift_losses.view(tokens.size(0), -1)
        shift_mask = mask[..., 1:].contiguous()
        sum_loss = (shift_losses * shift_mask).sum(dim=1)
        avg_loss = sum_loss / shift_mask.sum(dim=1)
        label = example["label"]
        results.append((sum_loss.argmin().item() == label, avg_loss.argmin().item() == label))
    return results


def test_hellaswag_scores_every_example_as_build_nanogpt_does(hf_model, our_model, hellaswag_file, tmp_path):
    reference = reference_hellaswag(hf_model, hellaswag_file)
    lines = hellaswag_file.read_text(encoding="utf-8").splitlines()
    assert len(reference) == 24 and len(GPT2Tokenizer().encode(json.loads(lines[5])["ctx"])) > BLOCK
    # Each example on its own: its verdicts, by summed and by mean loss, are the reference's...
    for line, (right_sum, right_norm) in zip(lines, reference):
        one = tmp_path / "one.jsonl"
        one.write_text(line + "\n", encoding="utf-8")
        assert HellaSwag(GPT2Tokenizer(), one).evaluate(our_model) == {
            "hellaswag_acc_norm": float(right_norm),
            "hellaswag_acc": float(right_sum),
        }
    # ...and all together (several examples per forward pass, padded to the longest), the same counts.
    metrics = HellaSwag(GPT2Tokenizer(), hellaswag_file).evaluate(our_model)
    assert metrics == {
        "hellaswag_acc_norm": sum(r[1] for r in reference) / 24,
        "hellaswag_acc": sum(r[0] for r in reference) / 24,
    }
    assert {r[0] for r in reference} == {True, False} and {r[1] for r in reference} == {True, False}
    assert [r[0] for r in reference] != [r[1] for r in reference]  # summed and mean loss disagree somewhere


def test_perplexity_matches_transformers(hf_model, our_model, tmp_path, cache_dir):
    text = "\n".join(shakespeare_lines(cache_dir)[:60])
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    ids = torch.tensor(GPT2Tokenizer().encode(text))
    nats, count = 0.0, 0
    for start in range(0, len(ids) - 1, BLOCK):  # consecutive windows; every token but the first predicted once
        x, y = ids[start : start + BLOCK][None], ids[start + 1 : start + BLOCK + 1][None]
        x = x[:, : y.size(1)]
        with torch.no_grad():
            logits = hf_model(input_ids=x).logits
        nats += F.cross_entropy(logits[0], y[0], reduction="sum").item()
        count += y.numel()
    assert count == len(ids) - 1 and (len(ids) - 1) % BLOCK  # a short last window too
    metrics = Perplexity(GPT2Tokenizer(), path).evaluate(our_model)
    assert metrics["ppl_loss"] == pytest.approx(nats / count, rel=1e-6)
    assert metrics["ppl"] == pytest.approx(torch.tensor(nats / count).exp().item(), rel=1e-5)
    limited = Perplexity(GPT2Tokenizer(), path).evaluate(our_model, limit=2)
    assert limited["ppl_loss"] != metrics["ppl_loss"]


def write_run(run_dir, model: GPT) -> None:
    """A run directory holding `model` as its best checkpoint, as `gptbench run` would leave it."""
    cfg = Config(preset="gpt2-124m")
    cfg.model = model.config
    cfg.data.tokenizer = "gpt2"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    GPT2Tokenizer().save(run_dir)
    checkpoint.save_atomic(
        {
            "format": train_state.FORMAT_VERSION,
            "model": model.state_dict(),
            "config": cfg.to_dict(),
            "step": 7,
            "best_val_loss": None,
        },
        run_dir / "best.pt",
    )


def test_gptbench_eval_on_a_run_and_on_a_hugging_face_folder(hf_model, our_model, hellaswag_file, tmp_path):
    run_dir = tmp_path / "run"
    write_run(run_dir, our_model)
    reference = reference_hellaswag(hf_model, hellaswag_file)
    out = gptbench("eval", str(run_dir), "--task", "hellaswag", "--data", str(hellaswag_file), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert (
        result["event"] == "eval" and result["task"] == "hellaswag" and result["examples"] == 24 and result["step"] == 7
    )
    assert result["metrics"] == {
        "hellaswag_acc_norm": sum(r[1] for r in reference) / 24,
        "hellaswag_acc": sum(r[0] for r in reference) / 24,
    }

    # The same weights as a Hugging Face folder: pretrained sources are scored the same way.
    hf_folder = tmp_path / "hf"
    hf_model.save_pretrained(hf_folder)
    write_hf_tokenizer(GPT2Tokenizer(), hf_folder, max_length=BLOCK)
    out = gptbench("eval", str(hf_folder), "--task", "hellaswag", "--data", str(hellaswag_file), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["metrics"] == result["metrics"] and json.loads(out.stdout)["step"] == 0

    out = gptbench("eval", str(run_dir), "--task", "ppl", "--limit", "3")  # tiny Shakespeare, 3 windows
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        "ppl |" in out.stdout
        and "3 examples" in out.stdout
        and "ppl_loss" in out.stdout
        and "best.pt (step 7)" in out.stdout
    )

    for args, words in [
        (["--task", "addition"], ["--task addition", "hint:"]),
        (["--task", "mmlu"], ["hellaswag, ppl, addition"]),
        (["--task", "ppl", "--data", str(tmp_path / "missing.txt")], ["missing.txt", "hint:"]),
        (["--task", "hellaswag", "--data", __file__], ["not a HellaSwag example"]),
    ]:
        bad = gptbench("eval", str(run_dir), *args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stdout + bad.stderr
        assert all(w in bad.stdout + bad.stderr for w in words), bad.stdout + bad.stderr


def test_hellaswag_download_failure_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from workbench.config import ConfigError
    from workbench.data import corpus

    def offline(url, timeout):
        raise OSError("no network")

    monkeypatch.setattr(corpus.urllib.request, "urlopen", offline)
    with pytest.raises(ConfigError) as err:
        HellaSwag(GPT2Tokenizer())
    assert "hellaswag_val.jsonl" in err.value.message and "--data" in err.value.hint


def _score_my_share(rank: int, world_size: int, init_file: str, state: dict, path: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=BLOCK, vocab_size=50257, bias=True))
        model.load_state_dict(state)
        scored = []
        metrics = HellaSwag(GPT2Tokenizer(), Path(path)).evaluate(
            model, limit=23, rank=rank, world_size=world_size, progress=lambda done, total: scored.append(total)
        )
        Path(f"{out}.{rank}").write_text(json.dumps([metrics, scored[-1]]))
    finally:
        torch.distributed.destroy_process_group()


def test_under_ddp_each_rank_scores_its_share_and_the_counts_add_up(our_model, hellaswag_file, tmp_path):
    single = HellaSwag(GPT2Tokenizer(), hellaswag_file).evaluate(our_model, limit=23)
    out = tmp_path / "metrics"
    torch.multiprocessing.spawn(
        _score_my_share,
        args=(2, str(tmp_path / "init"), our_model.state_dict(), str(hellaswag_file), str(out)),
        nprocs=2,
    )
    assert [json.loads(Path(f"{out}.{r}").read_text()) for r in range(2)] == [
        [single, 12],
        [single, 11],
    ]  # 23 examples: 12 + 11
