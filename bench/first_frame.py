"""How long `gptbench` takes to draw its first frame (import, compose, first render).

    python bench/first_frame.py [--repeats 5]

Each repeat is a fresh interpreter (nothing cached in sys.modules), timed from
its first line to the first frame of the picker under Textual's headless
driver at 80x24; the median is printed with the load average, because on a
shared machine the figure means little without it. The test suite asserts
only what makes this fast (tests/integration/test_tui_startup.py: no torch in the UI).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import time
    start = time.perf_counter()
    import asyncio
    import workbench.cli
    from workbench.tui.app import GPTBenchApp

    async def first_frame():
        async with GPTBenchApp().run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            return time.perf_counter() - start

    print(asyncio.run(first_frame()))
    """
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    seconds = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
        seconds.append(float(out.stdout))
    print(
        f"first frame: median {statistics.median(seconds):.2f} s, min {min(seconds):.2f} s over {args.repeats} runs "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
