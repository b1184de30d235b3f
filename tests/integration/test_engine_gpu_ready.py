"""The CUDA paths, proven on the CPU as far as a CPU can: checkpoints always load
to the CPU, bf16/fp16 autocast (with loss scaling) track float32, no collective
ever runs on one rank, torch.compile builds exactly its train and eval graphs,
the GPT-2 architecture takes a real step, torchrun spans two "nodes".

Tests marked `cuda` run only where a GPU is (the device leg of the engine issue).
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch
from command_line import TINY_CHAR, gptbench, of_kind, sets

from workbench import presets
from workbench.engine import checkpoint
from workbench.engine.device import PEAK_FLOPS, autocast_dtype, peak_flops, setup_device
from workbench.engine.distributed import World
from workbench.engine.micro_batch import (
    by_time,
    candidates,
    choose_micro_batch,
    largest_fitting,
    time_one_sequence,
    timed_how,
)
from workbench.engine.model import GPT, sample
from workbench.presets import load
from workbench.presets import resolve as resolve_preset
from workbench.runs import read_events

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tensors(obj, path="ckpt"):
    """Every tensor in a nested checkpoint, with where it sits."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{path}[{i}]")


def train(tmp_path, name, overrides, preset="shakespeare-char", timeout=300):
    run_dir = tmp_path / name
    out = gptbench("run", preset, "--headless", "--run-dir", str(run_dir), *sets(overrides), timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return run_dir, read_events(run_dir)


# --------------------------------------------------------------- checkpoints


def test_checkpoints_load_to_the_cpu_and_resume_places_them(tmp_path):
    """RNG states must be CPU ByteTensors for set_rng_state; weights and moments are placed by load_state_dict."""
    base = TINY_CHAR + ["train.eval_every=1000", "train.dtype=float16"]
    run_dir, _ = train(tmp_path, "ckpt", base + ["train.max_steps=10"])
    ckpt = checkpoint.load(run_dir / "last.pt")
    found = dict(tensors(ckpt))
    assert {"ckpt.rng.torch", "ckpt.data.rng"} <= set(found)
    assert all(t.device.type == "cpu" for t in found.values())
    assert found["ckpt.rng.torch"].dtype == torch.uint8
    assert ckpt["scaler"]["scale"] > 0  # fp16: the loss scale travels with the checkpoint
    out = gptbench("run", "--headless", "--resume", str(run_dir), *sets(["train.max_steps=20"]))
    assert out.returncode == 0, out.stdout + out.stderr
    assert of_kind(read_events(run_dir), "run_finished")[-1]["step"] == 20


# ------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_runs_track_the_float32_run(tmp_path, dtype):
    base = TINY_CHAR + ["train.max_steps=40", "train.eval_every=20"]
    _, fp32 = train(tmp_path, "fp32", base + ["train.dtype=float32"])
    _, amp = train(tmp_path, dtype, base + [f"train.dtype={dtype}"])
    assert of_kind(amp, "run_started")[0]["dtype"] == dtype
    ref = [e["loss"] for e in of_kind(fp32, "step")]
    got = [e["loss"] for e in of_kind(amp, "step")]
    assert len(got) == len(ref) == 8
    assert got[-1] < got[0] - 0.4  # it learns
    assert max(abs(a - b) for a, b in zip(got, ref)) < 0.08, (got, ref)
    val = [e["val_loss"] for e in of_kind(amp, "eval")]
    val_ref = [e["val_loss"] for e in of_kind(fp32, "eval")]
    assert max(abs(a - b) for a, b in zip(val, val_ref)) < 0.08


def test_bf16_is_decided_by_compute_capability():
    # T4 (7.5) and V100 (7.0) report bf16 "supported" through emulation: they get fp16 + loss scaling
    assert autocast_dtype("auto", "cuda", (7, 5))[0] == "float16"
    assert "7.0" in autocast_dtype("auto", "cuda", (7, 0))[1]
    assert autocast_dtype("auto", "cuda", (8, 0)) == ("bfloat16", "")
    assert autocast_dtype("auto", "cuda", (9, 0)) == ("bfloat16", "")
    assert autocast_dtype("auto", "cpu", None) == ("float32", "")
    assert autocast_dtype("bfloat16", "cpu", None) == ("bfloat16", "")  # allowed: how the CPU suite tests it
    with pytest.raises(Exception, match="compute capability 8.0"):
        autocast_dtype("bfloat16", "cuda", (7, 5))


# ---------------------------------------------------------------- DDP


def test_evals_and_checkpoints_off_the_log_steps_keep_ddp_ranks_in_sync(tmp_path):
    """The repro: log every 5, eval every 7, checkpoint every 3 used to leave rank 0 in an all-reduce alone."""
    run_dir = tmp_path / "ddp"
    out = gptbench(
        "run",
        "addition",
        "--headless",
        "--run-dir",
        str(run_dir),
        "--nproc-per-node",
        "2",
        *sets(["train.max_steps=21", "train.log_every=5", "train.eval_every=7", "train.ckpt_every=3"]),
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    events = read_events(run_dir)
    finished = of_kind(events, "run_finished")[-1]
    assert finished["reason"] == "completed" and finished["step"] == 21 and finished["ranks_in_sync"] is True
    assert [e["step"] for e in of_kind(events, "eval")] == [7, 14, 21]
    # every step's loss is reported once, also those read back early for an eval or a save
    assert [e["step"] for e in of_kind(events, "step")] == [5, 10, 15, 20, 21]


def test_ddp_resume_with_dropout_is_exact(tmp_path):
    """Each rank's RNG (its own dropout masks) is saved and restored: 10 + 10 steps == 20 steps on 2 processes."""
    common = TINY_CHAR + ["model.dropout=0.1", "train.min_lr=3e-3", "train.eval_every=1000", "train.log_every=5"]
    runs = {}
    for name, steps in (("straight", 20), ("split", 10)):
        out = gptbench(
            "run",
            "shakespeare-char",
            "--headless",
            "--run-dir",
            str(tmp_path / name),
            "--nproc-per-node",
            "2",
            *sets(common + [f"train.max_steps={steps}"]),
            timeout=300,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        runs[name] = tmp_path / name
    out = gptbench(
        "run",
        "--headless",
        "--resume",
        str(runs["split"]),
        "--nproc-per-node",
        "2",
        *sets(["train.max_steps=20"]),
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    losses = {name: {e["step"]: e["loss"] for e in of_kind(read_events(d), "step")} for name, d in runs.items()}
    assert losses["split"] == losses["straight"]
    assert of_kind(read_events(runs["split"]), "run_finished")[-1]["ranks_in_sync"] is True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_localhost_train_in_sync(tmp_path):
    """--nnodes 2 --node-rank R --rdzv-endpoint HOST:PORT, as on two machines (gloo)."""
    endpoint = f"127.0.0.1:{free_port()}"
    common = [
        "model.n_layer=2",
        "model.n_head=2",
        "model.n_embd=32",
        "train.batch_size=16",
        "train.max_steps=10",
        "train.log_every=5",
        "train.eval_every=1000",
        "train.warmup_steps=0",
    ]
    nodes = []
    for rank in (0, 1):
        argv = [
            sys.executable,
            "-m",
            "workbench.cli",
            "run",
            "addition",
            "--headless",
            "--run-dir",
            str(tmp_path / f"node{rank}"),
            "--nnodes",
            "2",
            "--node-rank",
            str(rank),
            "--rdzv-endpoint",
            endpoint,
            *sets(common),
        ]
        nodes.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs
    events = read_events(tmp_path / "node0")  # node 0 holds rank 0: it writes the run
    started, finished = of_kind(events, "run_started")[0], of_kind(events, "run_finished")[-1]
    assert started["world_size"] == 2 and finished["step"] == 10 and finished["ranks_in_sync"] is True
    assert not (tmp_path / "node1" / "events.jsonl").exists()
    assert "node 1 of 2" in outs[1][0]


def test_bad_node_flags_get_one_sentence_and_a_hint(tmp_path):
    out = gptbench("run", "addition", "--headless", "--nnodes", "2", "--node-rank", "0", "--rdzv-endpoint", "nohost")
    assert out.returncode == 2 and "HOST:PORT" in out.stderr and "hint:" in out.stderr


# ------------------------------------------------------------------ compile


def test_compiled_run_builds_the_train_and_eval_graphs_once(tmp_path):
    """fullgraph=True, the eval graph compiled up front: two graphs for the whole run, no recompiles."""
    run_dir, events = train(
        tmp_path,
        "compiled",
        TINY_CHAR + ["train.compile=true", "train.max_steps=20", "train.eval_every=10"],
        timeout=600,
    )
    started, finished = of_kind(events, "run_started")[0], of_kind(events, "run_finished")[-1]
    assert started["compile"] is True
    assert finished["compiled_graphs"] == 2, finished  # train + eval; three evals and a final save add none
    assert 0 < finished["compile_s"] < finished["t"] - started["t"]  # seconds compiling, within the run
    states = [e["state"] for e in of_kind(events, "status")]
    assert states[:3] == ["starting", "compiling", "training"]
    assert len(of_kind(events, "eval")) == 2
    # Step 1 compiled both graphs: the first step event's tokens/sec times the steps after it (2 to 5),
    # so it is at least their tokens over the elapsed time without the compiles, at any speed; a rate
    # over the whole elapsed time (the compiles in it, most of it on a CPU) falls far below that.
    first = of_kind(events, "step")[0]
    tokens_after_step_1 = (first["step"] - 1) * started["tokens_per_step"]
    assert first["tokens_per_sec"] >= 0.99 * tokens_after_step_1 / (first["elapsed_s"] - finished["compile_s"])


# ------------------------------------------------------------------- GPT-2


def test_gpt2_124m_architecture_takes_a_step_on_cpu(tmp_path):
    """12 layers, 768 wide, block 1024, the 50,257-token BPE: one real step with B=1 and its peak memory."""
    run_dir, events = train(
        tmp_path,
        "gpt2",
        [
            "profile=shakespeare",
            "train.batch_size=1",
            "train.tokens_per_step=1024",
            "train.max_steps=1",
            "train.eval_steps=1",
            "train.log_every=1",
        ],
        preset="gpt2-124m",
        timeout=600,
    )
    started = of_kind(events, "run_started")[0]
    assert started["params"] > 120e6 and started["config"]["model"]["block_size"] == 1024
    assert started["grad_accum"] == 1
    step = of_kind(events, "step")[0]
    assert 10.0 < step["loss"] < 11.5  # ~ln(50257) = 10.8 at initialisation
    peak_gb = of_kind(events, "run_finished")[-1]["peak_rss_gb"]
    print(f"gpt2-124m, B=1, T=1024, one step + eval + checkpoints on CPU: peak RSS {peak_gb:.2f} GB")
    # The whole run's envelope: weights 0.5 GB + grads 0.5 + AdamW 1.0 + activations and a checkpoint's
    # copy. Too coarse to see the logits (0.2 GB here): the next test measures those.
    assert peak_gb < 4.5


def peak_and_largest_allocation(fn) -> tuple[int, int]:
    """Bytes: the most held at once above the start, and the largest single allocation, while fn runs
    (the CPU allocator's own records, also inside custom ops)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    allocations = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = largest = 0
    for event in sorted(allocations, key=lambda e: e.start_ns()):
        live += event.nbytes()  # frees are negative
        peak, largest = max(peak, live), max(largest, event.nbytes())
    return peak, largest


@pytest.mark.parametrize("loss", ["fused", "plain"])
def test_gpt2_logits_are_never_held_in_full_by_the_fused_loss(loss):
    """At GPT-2's vocabulary and block, one sequence's float32 logits are 1024 x 50,304 x 4 = 206 MB:
    the fused loss holds a chunk of them at a time, the plain loss (the regression) all of them."""
    narrow = ["profile=shakespeare", "model.n_layer=1", "model.n_head=2", "model.n_embd=64"]
    cfg = resolve_preset(load("gpt2-124m"), narrow, "cpu")
    model = GPT(cfg.model, loss=loss)
    x = torch.randint(cfg.model.vocab_size, (1, cfg.model.block_size))
    logits_bytes = x.numel() * model.lm_head.weight.shape[0] * 4  # the padded vocabulary's float32 logits

    def step():
        model(x, x)[1].backward()

    step()  # first calls allocate once-only buffers: measure the second
    model.zero_grad(set_to_none=True)
    peak, largest = peak_and_largest_allocation(step)
    print(f"{loss}: peak {peak / 2**20:.0f} MB, largest {largest / 2**20:.0f} MB, logits {logits_bytes / 2**20:.0f} MB")
    never_in_full = largest < logits_bytes / 2 and peak < 1.5 * logits_bytes
    assert never_in_full == (loss == "fused"), (peak, largest, logits_bytes)


def test_micro_batch_auto_halves_until_it_fits_and_divides_the_step():
    assert candidates(512, 128) == [128, 64, 32, 16, 8, 4, 2, 1]
    assert candidates(12, 16) == [12, 6, 3, 1]  # every size divides the step: tokens_per_step stays exact
    tried = []
    assert largest_fitting(candidates(512, 128), lambda b: tried.append(b) or b <= 24) == 16
    assert tried == [128, 64, 32, 16]
    assert largest_fitting([4, 2, 1], lambda b: False) is None


def test_gpt2_preset_chooses_its_micro_batch_on_cpu(tmp_path):
    """The one check of auto on a real run: a size the rule may give, whatever this machine's speed."""
    tiny = [
        "profile=shakespeare",
        "model.n_layer=1",
        "model.n_head=2",
        "model.n_embd=32",
        "model.block_size=32",
        "train.tokens_per_step=1024",
        "train.max_steps=1",
        "train.eval_steps=1",
        "train.log_every=1",
    ]
    _, events = train(tmp_path, "auto", tiny, preset="gpt2-124m")
    started = of_kind(events, "run_started")[0]
    size = started["micro_batch"]
    assert size in candidates(32, 16) and size * started["grad_accum"] == 32  # 1024 = 32 seqs of 32
    assert started["config"]["train"]["batch_size"] is None  # the config keeps auto; the choice is this run's
    assert any(f"micro-batch {size} (auto: timed on the CPU" in e["message"] for e in of_kind(events, "log"))


def test_on_cpu_auto_takes_the_largest_micro_batch_within_the_time_aimed_at():
    """A micro-step must end often enough for requests to land: the rule, given the measured time."""
    sizes = candidates(24, 16)  # [12, 6, 3, 1]
    assert by_time(sizes, 0.001, 1.5) == 12  # a tiny model: the largest divisor up to 16
    assert by_time(sizes, 0.2, 1.5) == 6  # 12 would take 2.4 s, 6 take 1.2 s
    assert by_time(sizes, 0.5, 1.5) == 3  # exactly the time aimed at still fits
    assert by_time(sizes, 2.0, 1.5) == 1  # nothing is that fast: the smallest
    assert timed_how(6, 0.2, 1.5) == (
        "timed on the CPU: one sequence's micro-step took 0.20 s, so 6 take about 1.2 s (aiming at 1.5 s)"
    )
    assert timed_how(1, 2.0, 1.5).endswith("took 2.00 s, over the 1.5 s aimed at: the smallest micro-batch")


def test_the_cpu_timing_probe_measures_a_pass_and_leaves_the_rng_alone():
    tiny = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=32"]
    cfg = resolve_preset(load("shakespeare-char"), tiny, "cpu")
    cfg.model.vocab_size = 65
    model = GPT(cfg.model)
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    seconds = time_one_sequence(model, cfg, target_s=1.5)
    assert 0 < seconds < float("inf") and torch.equal(torch.rand(4), expected)
    assert all(p.grad is None for p in model.parameters())  # the probe leaves no gradients behind


# ----------------------------------------------------------- small things


@pytest.mark.parametrize("name", sorted(PEAK_FLOPS))
def test_mfu_peak_is_the_longest_matching_device_name(name):
    """Every row wins for its own device name, e.g. L40 over L4, H100 NVL over H100, A100 over A10."""
    real_names = {
        "H100": "NVIDIA H100 80GB HBM3",
        "A100": "NVIDIA A100-SXM4-80GB",
        "T4": "Tesla T4",
        "V100": "Tesla V100-SXM2-16GB",
        "4090": "NVIDIA GeForce RTX 4090",
        "3090": "NVIDIA GeForce RTX 3090",
        "A6000": "NVIDIA RTX A6000",
        "H200 NVL": "NVIDIA H200 NVL",
        "A10G": "NVIDIA A10G",
        "4090 D": "NVIDIA GeForce RTX 4090 D",
        "3090 Ti": "NVIDIA GeForce RTX 3090 Ti",
        "Laptop": "NVIDIA GeForce RTX 4090 Laptop GPU",
        "V100-PCIE": "Tesla V100-PCIE-32GB",
        "V100S": "Tesla V100S-PCIE-32GB",
        "MI300X": "AMD Instinct MI300X",
    }
    device_name = real_names.get(name, f"NVIDIA {name}")
    assert peak_flops(device_name) == PEAK_FLOPS[name]


def test_mfu_peaks_are_dense_bf16_and_unknown_gpus_get_none():
    assert peak_flops("NVIDIA H200 NVL") == 835e12  # not the SXM's 989
    assert peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("NVIDIA GeForce RTX 4090") == 165.2e12  # bf16 with fp32 accumulation, not 330
    assert peak_flops("NVIDIA GeForce RTX 3090") == 71e12  # not 142
    # no vendor figure: no MFU, rather than the A10's, the 4090's or anything else's
    for name in ("NVIDIA A10G", "NVIDIA GeForce RTX 4090 Laptop GPU", "NVIDIA GeForce RTX 5090", "NVIDIA H20"):
        assert peak_flops(name) is None, name


def test_top_k_zero_and_top_p_one_mean_off():
    logits = torch.randn(3, 500)
    draws = []
    for top_k, top_p in ((None, None), (0, None), (None, 1.0), (0, 1.0)):
        g = torch.Generator().manual_seed(0)
        draws.append(sample(logits, 1.0, top_k, top_p, g))
    assert all(torch.equal(d, draws[0]) for d in draws)


# ---------------------------------------------------------------- CUDA leg


def fused_adamw_groups(run_dir) -> list[bool]:
    """How the run's optimizer ran, from its checkpoint: each AdamW group's `fused` flag."""
    state = checkpoint.load(run_dir / "last.pt")["optimizer"]
    adamw = state.get("adamw", state)  # Muon + AdamW keep each part under its name
    return [group["fused"] for group in adamw["param_groups"]]


def test_runs_step_with_fused_adamw_on_the_cpu(tmp_path):
    """The flag the CUDA test below reads, read here the same way (fused AdamW runs on the CPU too)."""
    run_dir, _ = train(tmp_path, "cpu", TINY_CHAR + ["train.max_steps=2", "train.eval_every=1000"])
    assert fused_adamw_groups(run_dir) == [True, True]


@cuda
def test_cuda_resume_compile_bf16_and_fused_adamw(tmp_path):
    base = TINY_CHAR + ["train.device=cuda", "train.compile=true", "train.eval_every=10"]
    run_dir, events = train(tmp_path, "cuda", base + ["train.max_steps=20"], timeout=600)
    started, finished = of_kind(events, "run_started")[0], of_kind(events, "run_finished")[-1]
    assert started["device"].startswith("cuda") and started["dtype"] in ("bfloat16", "float16")
    assert started["compile"] is True and finished["compiled_graphs"] == 2 and finished["compile_s"] > 0
    assert fused_adamw_groups(run_dir) == [True, True]
    out = gptbench("run", "--headless", "--resume", str(run_dir), *sets(["train.max_steps=40"]), timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    events = read_events(run_dir)
    resumed, finished = of_kind(events, "run_started")[-1], of_kind(events, "run_finished")[-1]
    assert resumed["compile"] is True and finished["step"] == 40 and finished["compiled_graphs"] == 2
    assert fused_adamw_groups(run_dir) == [True, True]  # the resumed optimizer kept the fused kernel


@cuda
def test_cuda_micro_batch_auto_probes_the_gpu(tmp_path):
    _, events = train(
        tmp_path,
        "probe",
        [
            "profile=shakespeare",
            "train.device=cuda",
            "train.max_steps=2",
            "train.eval_steps=1",
            "train.log_every=1",
            "train.tokens_per_step=131072",
        ],
        preset="gpt2-124m",
        timeout=600,
    )
    assert any("probed on the GPU" in e["message"] for e in of_kind(events, "log"))


@cuda
def test_cuda_peak_memory_is_the_runs_not_the_micro_batch_probes():
    """gpu_mem_gb and gpu_peak_gb read max_memory_allocated: the probe's passes must not be in it."""
    cfg = presets.resolve_run(
        "shakespeare-char",
        None,
        ["train.device=cuda", "train.batch_size=auto", "train.tokens_per_step=65536", "model.vocab_size=65"],
        "cuda",
    )
    setup = setup_device(cfg.train)
    model = GPT(cfg.model).to(setup.device)
    size, how = choose_micro_batch(model, cfg, setup, World())
    assert "probed on the GPU" in how and size >= 1
    assert torch.cuda.max_memory_allocated(setup.device) == torch.cuda.memory_allocated(setup.device)
