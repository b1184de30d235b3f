import io
import json
import time
import urllib.error

import numpy as np
import pytest
import torch

from workbench.config import Config, ConfigError
from workbench.data import corpus
from workbench.data.corpus import cache_root, load_corpus, shakespeare_path
from workbench.data.tokenizers import GPT2Tokenizer, PromptError
from workbench.engine.batches import PrefetchingStream
from workbench.engine.data import build_dataset
from workbench.engine.tasks.addition import AdditionDataset

CPU = torch.device("cpu")


def text_config(path="", tokenizer="char", block_size=8) -> Config:
    cfg = Config()
    cfg.data.path, cfg.data.tokenizer, cfg.model.block_size = str(path), tokenizer, block_size
    return cfg


def addition_config(ndigit=2, holdout=500) -> Config:
    cfg = Config()
    cfg.data.kind, cfg.data.tokenizer, cfg.data.ndigit, cfg.data.holdout = "addition", "digits", ndigit, holdout
    cfg.model.block_size = 3 * ndigit
    return cfg


def tokens_of(dataset) -> np.ndarray:
    """All token ids of a dataset's train and val splits, in order."""
    return np.concatenate(
        [
            np.concatenate(s.arrays) if hasattr(s, "arrays") else s.tokens.numpy().view(np.uint16)
            for s in (dataset.train, dataset.val)
        ]
    )


# ----------------------------------------------------------------------------
# tiny Shakespeare and the token cache


def test_shakespeare_char_split_and_windows():
    cfg = text_config()
    ds = build_dataset(cfg, CPU)
    assert cfg.model.vocab_size == 65
    assert (len(ds.train), len(ds.val)) == (1_003_854, 111_540)  # nanoGPT's split
    x, y = ds.train_stream(batch_size=4, grad_accum=1, rank=0, world_size=1, seed=0).next()
    assert x.shape == y.shape == (4, 8) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    text = shakespeare_path().read_text(encoding="utf-8")
    assert ds.tokenizer.decode(x[0].tolist() + y[0, -1:].tolist()) in text


def test_token_cache_is_written_once_and_reused(monkeypatch):
    cfg = text_config()
    cfg.data.val_fraction = 0.25  # a key no other test uses: this test makes the cache entry
    build_dataset(cfg, CPU)
    entries = [
        p
        for p in (cache_root() / "tokens").iterdir()
        if json.loads((p / "meta.json").read_text())["val_fraction"] == 0.25
    ]
    assert len(entries) == 1
    mtime = (entries[0] / "train.bin").stat().st_mtime_ns

    def no_retokenizing(*args, **kwargs):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(corpus, "_write_split", no_retokenizing)
    ds = build_dataset(cfg, CPU)
    assert (entries[0] / "train.bin").stat().st_mtime_ns == mtime
    assert len(ds.val) == 1_115_394 - int(1_115_394 * 0.75)


def test_gpt2_on_shakespeare():
    cfg = text_config(tokenizer="gpt2", block_size=32)
    ds = build_dataset(cfg, CPU)
    assert cfg.model.vocab_size == 50257
    assert 330_000 < len(ds.train) + len(ds.val) < 345_000
    assert ds.tokenizer.decode(ds.train.tokens[:3].tolist()) == "First Citizen:"
    x, _ = next(ds.val_batches(batch_size=2, steps=1))
    assert x.max() < 50257


def test_own_text_file_and_missing_path(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("abcabcabc\n" * 50, encoding="utf-8")
    cfg = text_config(path, block_size=16)
    ds = build_dataset(cfg, CPU)
    assert ds.tokenizer.chars == "\nabc" and cfg.model.vocab_size == 4
    with pytest.raises(ConfigError) as err:
        build_dataset(text_config(tmp_path / "nope.txt"), CPU)
    assert "nope.txt" in err.value.message and "--set data.path=" in err.value.hint


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café ".encode("latin-1") * 100)
    with pytest.raises(ConfigError, match="not UTF-8"):
        build_dataset(text_config(path), CPU)


def test_block_size_larger_than_the_data(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("x" * 1000, encoding="utf-8")  # 900 train tokens, 100 val tokens
    with pytest.raises(ConfigError) as err:
        build_dataset(text_config(path, block_size=256), CPU)
    assert "model.block_size=256" in err.value.message and "val" in err.value.message and "100" in err.value.message


def test_vocab_size_smaller_than_tokenizer():
    cfg = text_config()
    cfg.model.vocab_size = 50
    with pytest.raises(ConfigError, match="vocab_size=50"):
        build_dataset(cfg, CPU)


def test_folder_of_documents_gpt2(tmp_path):
    docs = ["Hello world", "The quick brown fox.\n", "jumps over the lazy dog " * 20]
    for i, doc in enumerate(docs):
        (tmp_path / f"doc{i}.txt").write_text(doc, encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    ds = build_dataset(text_config(tmp_path, tokenizer="gpt2"), CPU)
    tok = GPT2Tokenizer()
    expected = tok.encode(docs[0]) + [tok.eot] + tok.encode(docs[1]) + [tok.eot] + tok.encode(docs[2])
    assert tokens_of(ds).tolist() == expected


def test_folder_of_documents_char(tmp_path):
    (tmp_path / "a.txt").write_text("hello " * 20, encoding="utf-8")
    (tmp_path / "b.txt").write_text("world " * 20, encoding="utf-8")
    ds = build_dataset(text_config(tmp_path), CPU)
    assert ds.tokenizer.decode(tokens_of(ds).tolist()) == "hello " * 20 + "\n" + "world " * 20


# ----------------------------------------------------------------------------
# token shards made by other tools


def write_llmc(path, tokens, version=1, ntok=None):
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [20240520, version, len(tokens) if ntok is None else ntok]
    path.write_bytes(header.tobytes() + np.asarray(tokens, dtype=np.uint16).tobytes())


def test_nanogpt_shards(tmp_path):
    np.arange(0, 1000, dtype=np.uint16).tofile(tmp_path / "train.bin")
    np.arange(50000, 50200, dtype=np.uint16).tofile(tmp_path / "val.bin")
    corpus = load_corpus(text_config(tmp_path, tokenizer="gpt2").data)
    assert np.concatenate(corpus.train).tolist() == list(range(1000))
    assert np.concatenate(corpus.val).tolist() == list(range(50000, 50200))
    ds = build_dataset(text_config(tmp_path, tokenizer="gpt2", block_size=16), CPU)
    x, y = next(ds.val_batches(batch_size=8, steps=1))
    assert x.min() >= 50000  # ids above 32767 survive the int16 storage
    assert torch.equal(x + 1, y) and torch.equal(x[:, 1:] - x[:, :-1], torch.ones(8, 15, dtype=torch.long))


def test_llmc_shards(tmp_path):
    write_llmc(tmp_path / "fineweb_val_000000.bin", range(40000, 40300))
    write_llmc(tmp_path / "fineweb_train_000001.bin", range(0, 500))
    write_llmc(tmp_path / "fineweb_train_000002.bin", range(500, 800))
    corpus = load_corpus(text_config(tmp_path, tokenizer="gpt2").data)
    assert np.concatenate(corpus.train).tolist() == list(range(800))
    assert np.concatenate(corpus.val).tolist() == list(range(40000, 40300))


def test_llmc_bad_shards(tmp_path):
    write_llmc(tmp_path / "a_val.bin", range(100), version=2)
    write_llmc(tmp_path / "a_train.bin", range(100))
    with pytest.raises(ConfigError, match="version 2"):
        load_corpus(text_config(tmp_path, tokenizer="gpt2").data)
    write_llmc(tmp_path / "a_val.bin", range(100), ntok=1000)
    with pytest.raises(ConfigError, match="truncated"):
        load_corpus(text_config(tmp_path, tokenizer="gpt2").data)


def test_npy_shards(tmp_path):
    np.save(tmp_path / "edufineweb_val_000000.npy", np.arange(60000, 60100, dtype=np.uint16))
    np.save(tmp_path / "edufineweb_train_000001.npy", np.arange(0, 300, dtype=np.uint16))
    np.save(tmp_path / "edufineweb_train_000002.npy", np.arange(300, 700, dtype=np.uint16))
    corpus = load_corpus(text_config(tmp_path, tokenizer="gpt2").data)
    assert np.concatenate(corpus.train).tolist() == list(range(700))
    assert np.concatenate(corpus.val).tolist() == list(range(60000, 60100))
    np.save(tmp_path / "edufineweb_train_000003.npy", np.arange(10, dtype=np.int64))
    with pytest.raises(ConfigError, match="uint16"):
        load_corpus(text_config(tmp_path, tokenizer="gpt2").data)


def test_shards_need_gpt2_and_a_val_split(tmp_path):
    np.save(tmp_path / "shard_000001.npy", np.arange(300, dtype=np.uint16))
    np.save(tmp_path / "shard_val.npy", np.arange(300, dtype=np.uint16))
    with pytest.raises(ConfigError, match="data.tokenizer=gpt2"):
        load_corpus(text_config(tmp_path, tokenizer="char").data)
    (tmp_path / "shard_val.npy").unlink()
    with pytest.raises(ConfigError, match="no val shard"):
        load_corpus(text_config(tmp_path, tokenizer="gpt2").data)


def test_memmapped_and_resident_data_give_the_same_batches(tmp_path):
    # Windows straddle the shard boundary at 500: the memmap reader must join them.
    np.save(tmp_path / "s_train_1.npy", np.arange(0, 500, dtype=np.uint16))
    np.save(tmp_path / "s_train_2.npy", np.arange(500, 530, dtype=np.uint16))
    np.save(tmp_path / "s_val_0.npy", np.arange(40000, 40100, dtype=np.uint16))
    cfg = text_config(tmp_path, tokenizer="gpt2", block_size=64)
    resident = build_dataset(cfg, CPU)
    cfg.data.on_device = False
    mapped = build_dataset(cfg, CPU)
    assert resident.info["on_device"] and not mapped.info["on_device"]
    a, b = resident.train_stream(32, 1, 0, 1, seed=3), mapped.train_stream(32, 1, 0, 1, seed=3)
    for _ in range(5):
        (xa, ya), (xb, yb) = a.next(), b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xa + 1, ya)  # consecutive tokens, also across the boundary
    b.close()
    assert all(torch.equal(p[0], q[0]) for p, q in zip(resident.val_batches(4, 3), mapped.val_batches(4, 3)))


def write_nanogpt_char_dataset(folder, text: str, meta: dict | None = None) -> str:
    """What nanoGPT's data/shakespeare_char/prepare.py writes: train.bin, val.bin (uint16) and meta.pkl."""
    import pickle

    chars = sorted(set(text))
    stoi, itos = {ch: i for i, ch in enumerate(chars)}, {i: ch for i, ch in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    n = int(len(ids) * 0.9)
    ids[:n].tofile(folder / "train.bin")
    ids[n:].tofile(folder / "val.bin")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump(meta if meta is not None else {"vocab_size": len(chars), "itos": itos, "stoi": stoi}, f)
    return "".join(chars)


def test_nanogpt_char_dataset_reads_its_vocabulary_from_meta_pkl(tmp_path):
    text = shakespeare_path().read_text(encoding="utf-8")[:20_000]
    chars = write_nanogpt_char_dataset(tmp_path, text)
    cfg = text_config(tmp_path, block_size=16)
    ds = build_dataset(cfg, CPU)
    assert ds.tokenizer.chars == chars and cfg.model.vocab_size == len(chars) == 58
    x, y = next(ds.val_batches(batch_size=4, steps=1))
    assert all(ds.tokenizer.decode(row.tolist()) in text for row in x)
    with pytest.raises(ConfigError) as err:
        build_dataset(text_config(tmp_path, tokenizer="gpt2"), CPU)
    assert "meta.pkl" in err.value.message and "data.tokenizer=char" in err.value.hint


class RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


@pytest.mark.parametrize(
    "meta, words",
    [
        (RunsCode(), "posix.system"),  # a pickle that would run a command when loaded
        ({"vocab_size": 3, "itos": {0: "a", 1: "b"}, "stoi": {}}, "not a nanoGPT char vocabulary"),
        ({"vocab_size": 2, "itos": {0: "a", 1: "a"}, "stoi": {}}, "same character"),
    ],
)
def test_meta_pkl_is_read_as_plain_data_only(tmp_path, monkeypatch, meta, words):
    monkeypatch.chdir(tmp_path)
    write_nanogpt_char_dataset(tmp_path, "abcabcabc" * 50, meta)
    with pytest.raises(ConfigError, match=words):
        build_dataset(text_config(tmp_path), CPU)
    assert not (tmp_path / "pwned").exists()


# ----------------------------------------------------------------------------
# the batch stream: global-batch rule, exact resume, fixed val windows


def shakespeare_dataset(cache_dir, **data):
    # Module fixtures are set up before the per-test cache dir is: point at the seeded cache here.
    cfg = text_config(block_size=16)
    for key, value in data.items():
        setattr(cfg.data, key, value)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache_dir))
        return build_dataset(cfg, CPU)


@pytest.fixture(scope="module")
def shakespeare(cache_dir):
    return shakespeare_dataset(cache_dir)


@pytest.fixture(scope="module")
def mapped_shakespeare(cache_dir):
    """The same corpus kept memmapped (as a corpus too big for the device would be): batches are read ahead."""
    return shakespeare_dataset(cache_dir, on_device=False)


@pytest.fixture(scope="module")
def adder():
    return build_dataset(addition_config(), CPU)


@pytest.mark.parametrize("name", ["shakespeare", "mapped_shakespeare", "adder"])
def test_two_ranks_see_what_one_rank_with_accumulation_sees(request, name):
    ds = request.getfixturevalue(name)
    single = ds.train_stream(batch_size=4, grad_accum=2, rank=0, world_size=1, seed=7)
    ranks = [ds.train_stream(batch_size=4, grad_accum=1, rank=r, world_size=2, seed=7) for r in range(2)]
    for _ in range(3):  # optimizer steps
        for rank in ranks:
            x1, y1 = single.next()
            x2, y2 = rank.next()
            assert torch.equal(x1, x2) and torch.equal(y1, y2)
    for stream in (single, *ranks):
        getattr(stream, "close", lambda: None)()


def test_memmapped_batches_are_read_ahead_and_equal_the_resident_ones(shakespeare, mapped_shakespeare):
    resident = shakespeare.train_stream(batch_size=4, grad_accum=3, rank=1, world_size=2, seed=5)
    ahead = mapped_shakespeare.train_stream(batch_size=4, grad_accum=3, rank=1, world_size=2, seed=5)
    assert isinstance(ahead, PrefetchingStream) and not isinstance(resident, PrefetchingStream)
    for _ in range(10):
        (xa, ya), (xb, yb) = resident.next(), ahead.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    deadline = time.time() + 10
    while not ahead.queue.full():  # the reader thread runs ahead on its own, up to 2 steps
        assert time.time() < deadline
        time.sleep(0.01)
    assert ahead.queue.qsize() == 6
    ahead.close()


def test_seeds_differ(shakespeare):
    a = shakespeare.train_stream(8, 1, 0, 1, seed=1).next()[0]
    b = shakespeare.train_stream(8, 1, 0, 1, seed=2).next()[0]
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name", ["shakespeare", "mapped_shakespeare"])  # memmapped: read ahead on a thread
@pytest.mark.parametrize("consumed", [0, 3, 4, 5, 7])  # grad_accum=4: boundaries and mid-step
def test_stream_state_is_the_start_of_the_current_step(request, tmp_path, name, consumed):
    """A checkpoint holds whole steps: mid-step, the state says where the step began,
    whatever a read-ahead thread has read beyond it."""
    ds = request.getfixturevalue(name)
    reference = ds.train_stream(batch_size=4, grad_accum=4, rank=1, world_size=2, seed=11)
    expected = [reference.next()[0] for _ in range(16)]
    original = ds.train_stream(batch_size=4, grad_accum=4, rank=1, world_size=2, seed=11)
    for _ in range(consumed):
        original.next()
    if isinstance(original, PrefetchingStream):
        deadline = time.time() + 10
        while not original.queue.full():  # the reader is two steps ahead of the trainer
            assert time.time() < deadline
            time.sleep(0.01)
    torch.save(original.state_dict(), tmp_path / "stream.pt")
    resumed = ds.train_stream(batch_size=4, grad_accum=4, rank=1, world_size=2, seed=999)
    resumed.load_state_dict(torch.load(tmp_path / "stream.pt", weights_only=True))
    step_start = consumed - consumed % 4
    for i in range(step_start, 12):
        assert torch.equal(resumed.next()[0], expected[i])
    original.rewind_step()  # a stop mid-step: the step's micro-batches come again
    for i in range(step_start, 12):
        assert torch.equal(original.next()[0], expected[i])
    for stream in (reference, original, resumed):
        getattr(stream, "close", lambda: None)()


@pytest.mark.parametrize("name", ["shakespeare", "adder"])
def test_val_batches_are_the_same_every_time(request, name):
    ds = request.getfixturevalue(name)
    first, second = list(ds.val_batches(8, 3)), list(ds.val_batches(8, 3))
    assert len(first) == 3 and not torch.equal(first[0][0], first[1][0])
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second))


# ----------------------------------------------------------------------------
# addition


def problem_ids(x: torch.Tensor, n: int) -> torch.Tensor:
    powers = 10 ** torch.arange(n - 1, -1, -1)
    return (x[:, :n] * powers).sum(1) * 10**n + (x[:, n : 2 * n] * powers).sum(1)


def test_addition_encoding(adder):
    x, y = adder.xy(torch.tensor([23 * 100 + 58]))  # 23 + 58 = 81 -> "081" reversed "180"
    assert x.tolist() == [[2, 3, 5, 8, 1, 8]]
    assert y.tolist() == [[-1, -1, -1, 1, 8, 0]]
    x, y = AdditionDataset(3, 10, 9, CPU).xy(torch.tensor([999_999]))  # 999 + 999 = 1998
    assert x.tolist() == [[9, 9, 9, 9, 9, 9, 8, 9, 9]]
    assert y.tolist() == [[-1] * 5 + [8, 9, 9, 1]]


def test_holdout_is_mingpts_test_split(adder):
    perm = torch.randperm(10_000, generator=torch.Generator().manual_seed(1337))
    assert torch.equal(adder.heldout, perm[:500])


def test_training_never_sees_held_out_problems(adder):
    # Every training sample number maps to a distinct problem that is not held out...
    every = problem_ids(adder.train_batch(torch.arange(adder.n_train))[0], 2)
    assert sorted(every.tolist() + adder.heldout.tolist()) == list(range(10_000))
    # ...and many drawn batches contain none of them.
    stream = adder.train_stream(batch_size=256, grad_accum=2, rank=0, world_size=1, seed=0)
    seen = torch.cat([problem_ids(stream.next()[0], 2) for _ in range(120)])
    assert not torch.isin(seen, adder.heldout).any()
    assert len(seen.unique()) > 8_500  # ~9,130 expected of 9,500


def test_more_digits_hold_out_distinct_problems():
    ds = AdditionDataset(ndigit=4, holdout=300, block_size=12, device=CPU)
    assert len(ds.heldout.unique()) == 300 and ds.heldout.max() < 10**8
    x, _ = ds.train_stream(512, 1, 0, 1, seed=0).next()
    assert not torch.isin(problem_ids(x, 4), ds.heldout).any()
    # held-out problems themselves are reachable from neither side of a gap
    near = ds.train_batch(ds.skips.clamp(max=ds.n_train - 1))[0]
    assert not torch.isin(problem_ids(near, 4), ds.heldout).any()


def test_val_batches_are_the_held_out_problems(adder):
    ids = torch.cat([problem_ids(x, 2) for x, _ in adder.val_batches(batch_size=128, steps=4)])
    assert torch.equal(ids[:500], adder.heldout) and torch.equal(ids[500:], adder.heldout[:12])


class Oracle(torch.nn.Module):
    """Stands in for GPT: predicts the next answer digit correctly (or always wrongly)."""

    def __init__(self, ndigit, wrong=False):
        super().__init__()
        self.n, self.wrong, self.modes = ndigit, wrong, []

    def forward(self, idx, targets=None):
        self.modes.append(self.training)
        n, (B, T) = self.n, idx.shape
        a, b = problem_ids(idx, n).div(10**n, rounding_mode="floor"), problem_ids(idx, n) % 10**n
        digit = (a + b) // 10 ** (T - 2 * n) % 10  # the answer is written ones digit first
        logits = torch.zeros(B, T, 64)
        logits[torch.arange(B), -1, (digit + self.wrong) % 10] = 1.0
        return logits, None


def test_accuracy_of_an_oracle_and_of_a_model_that_is_always_wrong(adder):
    oracle = Oracle(2)
    assert adder.metrics(oracle) == {"accuracy": 1.0, "accuracy_all": 1.0}
    assert oracle.training and oracle.modes and not any(oracle.modes)  # eval while decoding, then restored
    wrong = Oracle(2, wrong=True).eval()
    assert adder.metrics(wrong) == {"accuracy": 0.0, "accuracy_all": 0.0}
    assert not wrong.training


def test_accuracy_with_more_digits():
    three = AdditionDataset(3, 200, 9, CPU)
    assert three.metrics(Oracle(3)) == {"accuracy": 1.0}  # 1M problems: not at every eval...
    assert three.metrics(Oracle(3), final=True) == {"accuracy": 1.0, "accuracy_all": 1.0}  # ...but at the last
    with pytest.raises(ConfigError, match="up to 3 digits"):
        AdditionDataset(4, 10, 12, CPU).accuracy_all(Oracle(4))


def test_prompts_for_the_sampling_console(adder):
    assert adder.format_prompt("23+58") == [2, 3, 5, 8]
    assert adder.format_prompt(" 3 + 58 ") == [0, 3, 5, 8]
    assert adder.format_prompt("3+5=") == [0, 3, 0, 5]
    for bad in ("123+4", "2*3", "hello", "23+", "-1+2"):
        with pytest.raises(PromptError) as err:
            adder.format_prompt(bad)
        assert "at most 2 digits, e.g. 23+58" in err.value.hint
    assert adder.judge("23+58", [1, 8, 0]) == {"answer": 81, "expected": 81, "correct": True}
    assert adder.judge([9, 9, 9, 9], [8, 9, 1]) == {"answer": 198, "expected": 198, "correct": True}
    assert adder.judge("50+50", [0, 0, 0])["correct"] is False


def test_addition_block_size_too_small():
    cfg = addition_config()
    cfg.model.block_size = 5
    with pytest.raises(ConfigError, match="block_size=5"):
        build_dataset(cfg, CPU)


# ----------------------------------------------------------------------------
# downloading tiny Shakespeare (no network: urlopen is replaced)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    return tmp_path / "empty-cache" / "gptbench" / "tinyshakespeare" / "input.txt"


def test_download_failure_says_where_to_put_the_file(empty_cache, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(corpus.urllib.request, "urlopen", offline)
    with pytest.raises(ConfigError) as err:
        shakespeare_path()
    assert str(empty_cache) in err.value.hint and "data.path" in err.value.hint
    assert not empty_cache.exists()


def test_download_is_verified(empty_cache, cache_dir, monkeypatch):
    real = (cache_dir / "gptbench" / "tinyshakespeare" / "input.txt").read_bytes()
    monkeypatch.setattr(corpus.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"not shakespeare"))
    with pytest.raises(ConfigError, match="sha256"):
        shakespeare_path()
    monkeypatch.setattr(corpus.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(real))
    assert shakespeare_path().read_bytes() == real
    assert [p.name for p in empty_cache.parent.iterdir()] == ["input.txt"]  # no temp files left


def test_metrics_with_the_real_gpt(adder):
    from workbench.engine.model import GPT

    cfg = addition_config()
    cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd, cfg.model.vocab_size = 1, 2, 16, 10
    model = GPT(cfg.model)
    metrics = adder.metrics(model)
    assert set(metrics) == {"accuracy", "accuracy_all"} and all(0.0 <= v <= 1.0 for v in metrics.values())
    assert model.training


# ----------------------------------------------------------------------------
# read-ahead under a real trainer: Ctrl-C, resume, same run


def test_a_run_on_a_memmapped_corpus_killed_and_resumed_equals_a_straight_run(tmp_path):
    """Ctrl-C at whatever step, then --resume: every step's loss and the final weights are the straight run's."""
    import os
    import signal
    import subprocess
    import sys

    from workbench.runs import read_events

    common = [
        "model.n_layer=1",
        "model.n_head=2",
        "model.n_embd=32",
        "model.block_size=32",
        "model.dropout=0.1",
        "train.batch_size=8",
        "train.grad_accum=2",
        "train.max_steps=60",
        "train.log_every=1",
        "train.eval_every=1000",
        "train.warmup_steps=0",
        "data.on_device=false",
    ]
    sets = [a for o in common for a in ("--set", o)]
    cli = [sys.executable, "-m", "workbench.cli", "run", "shakespeare-char", "--headless"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert subprocess.run([*cli, "--run-dir", str(straight), *sets], capture_output=True, timeout=300).returncode == 0

    proc = subprocess.Popen(
        [*cli, "--run-dir", str(killed), *sets], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.time() + 120
    while max([e["step"] for e in read_events(killed) if e["event"] == "step"], default=0) < 15:
        assert time.time() < deadline and proc.poll() is None, "no steps"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    stopped = [e for e in read_events(killed) if e["event"] == "run_finished"][-1]["step"]
    assert 15 <= stopped < 60
    resumed = subprocess.run(
        [*cli[:3], "run", "--headless", "--resume", str(killed)], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    def losses(run_dir):
        return {e["step"]: e["loss"] for e in read_events(run_dir) if e["event"] == "step"}

    assert len(losses(straight)) == 60 and losses(killed) == losses(straight)
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(killed / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
