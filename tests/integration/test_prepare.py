"""`gptbench data`: corpora -> llm.c shards (layout, EOT placement, resume), the
missing-shards message, and a tiny GPT-2 trained on the shards with task evals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from command_line import gptbench

from workbench.config import ConfigError, DataConfig
from workbench.data import prepare as prep
from workbench.data.corpus import PREP_FILE, load_corpus
from workbench.data.prepare import Settings, prepare
from workbench.data.shards import LLMC_MAGIC
from workbench.data.tokenizers import GPT2Tokenizer
from workbench.runs import read_events

EOT = GPT2Tokenizer.eot
VAL, SHARD = 2_000, 5_000


@pytest.fixture(scope="module")
def documents(cache_dir) -> list[str]:
    """600 paragraphs of tiny Shakespeare (~24k GPT-2 tokens), one with special-token text in it."""
    text = (cache_dir / "gptbench" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    docs = [p for p in text.split("\n\n") if p.strip()][:600]
    docs[3] += " <|endoftext|> is text here, not a separator"
    return docs


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory, documents):
    path = tmp_path_factory.mktemp("corpus") / "shakespeare.jsonl"
    path.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(documents)), encoding="utf-8")
    return path


def expected_tokens(documents: list[str]) -> np.ndarray:
    """llm.c's layout: every document is <|endoftext|> and then its tokens, special-token text encoded as text."""
    enc = GPT2Tokenizer().encoding
    return np.array([t for d in documents for t in [EOT, *enc.encode_ordinary(d)]], dtype=np.uint16)


def run_prep(source, out, workers=1, **settings) -> dict:
    events = []
    state = prepare(
        Settings(str(source), val_tokens=VAL, shard_tokens=SHARD, **settings),
        out,
        workers,
        lambda event, **f: events.append({"event": event, **f}),
        command="gptbench data ...",
    )
    return {"state": state, "events": events}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, jsonl):
    """An uninterrupted prep on 2 worker processes."""
    out = tmp_path_factory.mktemp("reference")
    run_prep(jsonl, out, workers=2)
    return out


def test_jsonl_to_llmc_shards(reference, documents):
    tokens = expected_tokens(documents)
    names = sorted(p.name for p in reference.glob("*.bin"))
    assert names[-1] == "val_000000.bin" and names[0] == "train_000001.bin"  # val first, then train
    assert len(names) == 1 + -(-(len(tokens) - VAL) // SHARD)
    for name in names:
        raw = (reference / name).read_bytes()
        header = np.frombuffer(raw[:1024], dtype=np.int32)
        assert header[:3].tolist() == [LLMC_MAGIC, 1, (len(raw) - 1024) // 2]
    corpus = load_corpus(DataConfig(path=str(reference), tokenizer="gpt2"))
    assert np.concatenate(corpus.val).tolist() == tokens[:VAL].tolist()
    assert np.concatenate(corpus.train).tolist() == tokens[VAL:].tolist()
    assert [len(a) for a in corpus.train][:-1] == [SHARD] * (len(corpus.train) - 1)
    everything = np.concatenate(corpus.val + corpus.train)
    assert (everything == EOT).sum() == len(documents) and everything[0] == EOT  # one per document, in front
    state = json.loads((reference / PREP_FILE).read_text())
    assert state["finished"] and state["tokens"] == len(tokens) and state["docs_done"] == len(documents)


def test_an_interrupted_prep_resumes_to_the_same_shards(tmp_path, jsonl, reference, monkeypatch):
    out, real_write, calls = tmp_path / "shards", prep.write_llmc, []

    def crash_in_the_fourth_shard(path, tokens):
        calls.append(path.name)
        if len(calls) == 4:  # half a file on disk, then the process dies
            path.with_name(path.name + ".tmp").write_bytes(b"partial")
            raise KeyboardInterrupt
        real_write(path, tokens)

    monkeypatch.setattr(prep, "write_llmc", crash_in_the_fourth_shard)
    with pytest.raises(KeyboardInterrupt):
        run_prep(jsonl, out)
    state = json.loads((out / PREP_FILE).read_text())
    assert len(state["shards"]) == 3 and not state["finished"] and state["doc_offset"] > 0  # stopped mid-document
    assert (
        state["stream"]["docs"] <= state["docs_done"] and state["stream"]["docs"] > 0
    )  # resumes from the stream's own state
    with pytest.raises(ConfigError, match="has not finished"):
        load_corpus(DataConfig(path=str(out), tokenizer="gpt2"))

    monkeypatch.setattr(prep, "write_llmc", real_write)
    resumed = run_prep(jsonl, out)
    assert any("resuming after 3 shards" in e.get("message", "") for e in resumed["events"])
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())  # no .tmp left
    for shard in reference.glob("*.bin"):
        assert (out / shard.name).read_bytes() == shard.read_bytes()

    # A finished prep is not redone; other settings are refused, not mixed in.
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run_prep(jsonl, out)
    assert again["events"][-1].get("already") and mtimes == {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(ConfigError, match="other settings") as err:
        prepare(Settings(str(jsonl), val_tokens=VAL, shard_tokens=SHARD * 2), out, 1, lambda *a, **f: None, "")
    assert "shard_tokens=5000" in err.value.message and "delete" in err.value.hint


def test_parquet_and_a_folder_of_text_files(tmp_path, documents):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"content": documents[:200], "n": list(range(200))}), tmp_path / "docs.parquet", row_group_size=50
    )
    run_prep(tmp_path / "docs.parquet", tmp_path / "from-parquet", text_field="content")
    corpus = load_corpus(DataConfig(path=str(tmp_path / "from-parquet"), tokenizer="gpt2"))
    assert np.concatenate(corpus.val + corpus.train).tolist() == expected_tokens(documents[:200]).tolist()

    folder = tmp_path / "texts"
    folder.mkdir()
    for i, doc in enumerate(documents[:300]):
        (folder / f"doc{i:03d}.txt").write_text(doc, encoding="utf-8")  # one document per file
    (folder / "README.md").write_text("not a document")
    run_prep(folder, tmp_path / "from-txt")
    corpus = load_corpus(DataConfig(path=str(tmp_path / "from-txt"), tokenizer="gpt2"))
    assert np.concatenate(corpus.val + corpus.train).tolist() == expected_tokens(documents[:300]).tolist()


def test_prep_mistakes_get_a_sentence_and_a_hint(tmp_path, jsonl):
    with pytest.raises(ConfigError) as err:
        run_prep(jsonl, tmp_path / "a", text_field="body")
    assert "'body'" in err.value.message and "id, text" in err.value.message and "--text-field" in err.value.hint
    small = tmp_path / "small.jsonl"
    small.write_text('{"text": "To be, or not to be"}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        run_prep(small, tmp_path / "b")
    assert "fewer than the 2,000" in err.value.message and "--val-tokens 1" in err.value.hint
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.txt").write_text("x")
    (mixed / "b.jsonl").write_text('{"text": "y"}\n')
    with pytest.raises(ConfigError, match="mixes"):
        run_prep(mixed, tmp_path / "c")


def test_a_small_corpus_just_works_with_a_tenth_as_val(tmp_path, jsonl, documents):
    shards = tmp_path / "shards"
    out = gptbench("data", str(jsonl), "--out", str(shards), "--workers", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    tokens = len(expected_tokens(documents))
    said = [line for line in out.stdout.splitlines() if "a tenth" in line]
    assert said == [
        f"the source has {tokens:,} tokens, fewer than the 100,000,000 of a val shard: "
        f"val gets a tenth ({tokens // 10:,}), train the rest (--val-tokens sets it)"
    ], out.stdout
    state = json.loads((shards / PREP_FILE).read_text())
    assert [s["tokens"] for s in state["shards"]] == [tokens // 10, tokens - tokens // 10] and state["finished"]
    corpus = load_corpus(DataConfig(path=str(shards), tokenizer="gpt2"))
    assert np.concatenate(corpus.val + corpus.train).tolist() == expected_tokens(documents).tolist()


def test_gpt2_preset_without_its_shards_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    run_dir = tmp_path / "run"
    out = gptbench("run", "gpt2-124m", "--headless", "--run-dir", str(run_dir))
    assert out.returncode == 2, out.stdout + out.stderr
    text = " ".join((out.stdout + out.stderr).split())
    for words in ("FineWeb-Edu", "gptbench data fineweb-edu", "hour", "profile=shakespeare", "data.path=PATH"):
        assert words in text
    assert "error at step" not in text and "best val loss" not in text  # the error only: there was no run
    assert "run_started" not in {e["event"] for e in read_events(run_dir)}  # stopped before the model was built


def test_gptbench_data_then_a_tiny_gpt2_on_the_shards_with_task_evals(tmp_path, monkeypatch, jsonl, cache_dir):
    # A cache of our own, with tiny Shakespeare (for ppl) and a HellaSwag file (for hellaswag) in place.
    cache = tmp_path / "cache"
    shutil.copytree(cache_dir / "gptbench" / "tinyshakespeare", cache / "gptbench" / "tinyshakespeare")
    hellaswag = cache / "gptbench" / "hellaswag" / "hellaswag_val.jsonl"
    hellaswag.parent.mkdir(parents=True)
    hellaswag.write_text(
        "".join(
            json.dumps(
                {
                    "ctx": f"The man sat down and {i}",
                    "label": i % 4,
                    "endings": ["ate.", "slept soundly.", "read a book", "sang"],
                }
            )
            + "\n"
            for i in range(8)
        )
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))

    shards = tmp_path / "shards"
    out = gptbench(
        "data", str(jsonl), "--out", str(shards), "--shard-tokens", "5k", "--val-tokens", "2000", "--workers", "2"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "tokens/s" in out.stdout and "train on them" in out.stdout
    again = gptbench("data", str(jsonl), "--out", str(shards), "--shard-tokens", "5k", "--val-tokens", "2000")
    assert again.returncode == 0 and "already prepared" in again.stdout

    run_dir = tmp_path / "run"
    tiny = [
        "model.n_layer=1",
        "model.n_head=2",
        "model.n_embd=32",
        "model.block_size=32",
        "train.batch_size=4",
        "train.tokens_per_step=256",
        "train.max_steps=6",
        "train.eval_every=3",
        "train.eval_steps=2",
        "train.log_every=3",
        "train.warmup_steps=1",
        f"data.path={shards}",
        "train.eval_tasks=hellaswag,ppl",
        "train.eval_tasks_limit=4",
    ]
    out = gptbench(
        "run", "gpt2-124m", "--headless", "--run-dir", str(run_dir), *[a for o in tiny for a in ("--set", o)]
    )
    assert out.returncode == 0, out.stdout + out.stderr
    events = read_events(run_dir)
    started = next(e for e in events if e["event"] == "run_started")
    assert started["config"]["data"]["path"] == str(shards) and started["config"]["train"]["eval_tasks"] == [
        "hellaswag",
        "ppl",
    ]
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [3, 6]
    for e in evals:
        assert set(e["metrics"]) == {"hellaswag_acc_norm", "hellaswag_acc", "ppl", "ppl_loss"}
        assert e["metrics"]["hellaswag_acc_norm"] in (0.0, 0.25, 0.5, 0.75, 1.0) and e["metrics"]["ppl"] > 1
    assert "hellaswag_acc_norm" in out.stdout  # the headless eval line shows them
