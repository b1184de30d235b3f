"""The app starts fast because the UI process never imports torch."""

import subprocess
import sys
import textwrap

# Runs in a fresh interpreter: any import of torch (direct or through a
# dependency) would show in sys.modules, and the first frame must come in under
# a second on this project's 2-core machines.
PROBE = textwrap.dedent(
    """
    import asyncio, sys, time
    start = time.perf_counter()
    import workbench.cli
    from workbench.tui.app import GPTBenchApp

    async def first_frame():
        app = GPTBenchApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            return time.perf_counter() - start

    seconds = asyncio.run(first_frame())
    print("torch" in sys.modules, round(seconds, 3))
    """
)


def test_the_ui_never_imports_torch_and_draws_its_first_frame_within_a_second(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    torch_loaded, seconds = out.stdout.split()
    assert torch_loaded == "False"
    assert float(seconds) < 1.0, f"first frame after {seconds}s"
