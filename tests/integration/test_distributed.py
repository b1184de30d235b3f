"""Many processes (torchrun, gloo on the CPU): waits that fit the work, val windows
split across the ranks, resumes on another number of processes or micro-batch.

Each test is a real torchrun of real code; the models are tiny and the runs a few steps.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROCESSES = 2


def torchrun(script: str, tmp_path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `script` (Python source) on PROCESSES gloo ranks; its output captured."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={PROCESSES}", str(path)]
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
    assert "rank 1: waiting for rank 0 to fill the cache" in text
