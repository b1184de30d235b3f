"""The app starts fast because the UI process never imports torch.

How fast is measured by bench/first_frame.py, not asserted here: a wall-clock
threshold fails on a loaded machine for reasons that have nothing to do with
the app. What makes it fast can be asserted anywhere: no torch at start-up.
"""

import subprocess
import sys
import textwrap

# Runs in a fresh interpreter: any import of torch (direct or through a
# dependency) would show in sys.modules.
PROBE = textwrap.dedent(
    """
    import asyncio, sys
    import workbench.cli
    from workbench.tui.app import GPTBenchApp

    async def first_frame():
        app = GPTBenchApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            return app.screen.__class__.__name__

    screen = asyncio.run(first_frame())
    print(screen, "torch" in sys.modules)
    """
)


def test_the_ui_draws_its_first_frame_without_importing_torch(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["PickerScreen", "False"]
