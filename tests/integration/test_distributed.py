"""Many processes (torchrun, gloo on the CPU): waits that fit the work, val windows
split across the ranks, resumes on another number of processes or micro-batch.

Each test is a real torchrun of real code; the models are tiny and the runs a few steps.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

from command_line import gptbench, of_kind, sets

from workbench.runs import read_events

PROCESSES = 2
# The adder (block 6), tiny: a step takes milliseconds, torchrun's start-up dominates.
TINY_ADDER = [
    "model.n_layer=2",
    "model.n_head=2",
    "model.n_embd=32",
    "train.batch_size=16",
    "train.tokens_per_step=192",
    "train.log_every=5",
    "train.warmup_steps=0",
]


def torchrun(script: str, tmp_path, processes: int = PROCESSES, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `script` (Python source) on gloo ranks; its output captured."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def test_the_other_ranks_wait_for_rank_0s_start_up_work_past_the_collective_timeout(tmp_path):
    """Rank 0 tokenizes or downloads for longer than a collective may take: the others wait, and say for what."""
    out = torchrun(
        """
        import time
        from datetime import timedelta
        from workbench.engine.distributed import init_world, main_process_first, shutdown

        world = init_world("cpu", timeout=timedelta(seconds=1))  # as if NCCL's watchdog were this quick
        with main_process_first(world, "fill the cache"):
            if world.is_main:
                time.sleep(4)
        print(f"rank {world.rank} through", flush=True)
        shutdown(world, clean=True)
        """,
        tmp_path,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "rank 0 through" in text and "rank 1 through" in text
    assert "rank 1: waiting for rank 0, then the first process of each node, to fill the cache" in text


def test_rank_0_goes_first_then_the_first_process_of_every_other_node(tmp_path):
    """A cache on a disk of its own per node is filled once per node, not by every process of it."""
    turns = tmp_path / "turns.txt"
    out = torchrun(
        f"""
        import time
        from datetime import timedelta
        from workbench.engine.distributed import init_world, main_process_first, shutdown

        world = init_world("cpu", timeout=timedelta(seconds=1))
        world.local_rank = [0, 1, 0][world.rank]  # as if rank 2 were the first process of a second node
        with main_process_first(world, "fill the cache"):
            if world.local_rank == 0:
                time.sleep(2)  # filling it takes longer than a collective may
            with open({str(turns)!r}, "a") as f:
                f.write(f"{{world.rank}}\\n")
        shutdown(world, clean=True)
        """,
        tmp_path,
        processes=3,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert turns.read_text().split() == ["0", "2", "1"]


def run(run_dir, overrides, processes=1, resume=False, preset="addition"):
    where = ["--resume", str(run_dir)] if resume else [preset, "--run-dir", str(run_dir)]
    out = gptbench("run", *where, "--headless", f"--nproc-per-node={processes}", *sets(overrides), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return read_events(run_dir)


def test_val_loss_over_two_ranks_is_the_one_process_val_loss(tmp_path):
    """Each rank evaluates its share of the val batches (3 of them: 2 and 1); the sum is one process's."""
    common = TINY_ADDER + ["train.max_steps=10", "train.eval_every=5", "train.eval_steps=3"]
    one = run(tmp_path / "one", common)
    two = run(tmp_path / "two", common, processes=2)
    val_one = [e["val_loss"] for e in of_kind(one, "eval")]
    val_two = [e["val_loss"] for e in of_kind(two, "eval")]
    assert len(val_one) == len(val_two) == 2
    assert max(abs(a - b) for a, b in zip(val_one, val_two)) < 1e-5, (val_one, val_two)


def test_a_run_resumes_on_another_number_of_processes_and_micro_batch(tmp_path):
    """2 processes (auto micro-batch) -> 1 process (auto probes again) -> 2 processes of half the micro-batch:
    the tokens per step hold, the accumulation follows, the losses continue those of one straight run."""
    common = [o for o in TINY_ADDER if not o.startswith("train.batch_size")]
    common += ["train.eval_every=1000", "train.schedule=constant"]  # the same lr however long each leg
    straight = run(tmp_path / "straight", common + ["train.batch_size=16", "train.max_steps=15"], processes=2)
    split = tmp_path / "split"
    run(split, common + ["train.batch_size=auto", "train.max_steps=5"], processes=2)
    assert json.loads((split / "config.json").read_text())["train"]["batch_size"] is None  # auto stays auto
    run(split, ["train.max_steps=10"], processes=1, resume=True)
    run(split, ["train.max_steps=15", "train.batch_size=8"], processes=2, resume=True)

    events = read_events(split)
    legs = [(e["world_size"], e["micro_batch"], e["grad_accum"]) for e in of_kind(events, "run_started")]
    # On a CPU, auto goes by the measured time of a pass (micro_batch.by_time, tested with injected
    # timings): what it picks depends on the machine's load, so only the cut's arithmetic is asserted.
    assert [world for world, _, _ in legs] == [2, 1, 2] and legs[2][1:] == (8, 2)
    assert [world * micro * accum for world, micro, accum in legs] == [32, 32, 32]  # 32 sequences a step
    assert sum(bool(re.search(r"micro-batch \d+ \(auto", e["message"])) for e in of_kind(events, "log")) == 2
    want = {e["step"]: e["loss"] for e in of_kind(straight, "step")}
    got = {e["step"]: e["loss"] for e in of_kind(events, "step")}
    assert sorted(got) == sorted(want) == [5, 10, 15]
    assert max(abs(got[s] - want[s]) for s in want) < 1e-5, (got, want)
    assert of_kind(events, "run_finished")[-1]["ranks_in_sync"] is True
