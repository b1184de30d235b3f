"""Running `gptbench` as a user would: a real subprocess, its output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def gptbench(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    """`gptbench ARGS` in a fresh interpreter; never reaches the Hub (HF_HUB_OFFLINE)."""
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )
