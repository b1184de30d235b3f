"""The app under a heavy step, in tmux: gpt2-124m (profile=shakespeare) on the CPU.

    python bench/heavy_walk.py [--size 80x24] [--shakespeare PATH]

Launches `gptbench run gpt2-124m --set profile=shakespeare` in a detached tmux
session of the given size, reads the screen as a person would (tmux
capture-pane) and times: the first frame, the first micro-step progress on
screen (after launch), a pause (p until PAUSED), the first token of a Talk
prompt on the live model, and a stop (s until STOPPED). Every screen it waited
for goes to $TMPDIR/heavy-walk-WxH.log. Needs tmux and tiny
Shakespeare (default: ../shared/data/tinyshakespeare/input.txt); runs go to a
temporary directory. On a shared machine the figures mean little: the load
average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SESSION = "gptbench-heavy-walk"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="80x24")
    p.add_argument("--shakespeare", type=Path, default=Path("../shared/data/tinyshakespeare/input.txt"))
    args = p.parse_args()
    width, height = args.size.split("x")
    log_path = Path(tempfile.gettempdir()) / f"heavy-walk-{args.size}.log"
    log = open(log_path, "w")
    work = Path(tempfile.mkdtemp(prefix="heavy-walk-"))
    cache = work / "cache" / "gptbench" / "tinyshakespeare"
    cache.mkdir(parents=True)
    shutil.copy(args.shakespeare, cache / "input.txt")
    figures: dict[str, float | None] = {}

    def wait(what: str, seen, timeout: float, since: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = screen()
            if seen(text):
                figures[what] = time.time() - since
                print(f"--- {what}: {figures[what]:.1f} s\n{text}", file=log, flush=True)
                return
            time.sleep(0.1)
        figures[what] = None
        print(f"--- {what}: not within {timeout} s\n{screen()}", file=log, flush=True)

    env = (
        f"cd {os.getcwd()} && PYTHONPATH={os.getcwd()} XDG_CACHE_HOME={work / 'cache'} "
        f"GPTBENCH_RUNS={work / 'runs'} HF_HUB_OFFLINE=1"
    )
    command = f"{env} {sys.executable} -m workbench run gpt2-124m --set profile=shakespeare; sleep 600"
    tmux("kill-session", "-t", SESSION)
    launched = time.time()
    tmux("new-session", "-d", "-s", SESSION, "-x", width, "-y", height, command)
    try:
        wait("first frame", lambda s: "Watch" in s, 60, launched)
        wait("first progress on screen", lambda s: "micro " in s, 900, launched)
        time.sleep(6)
        tmux("send-keys", "-t", SESSION, "p")
        wait("pause", lambda s: " PAUSED " in s, 600, time.time())
        tmux("send-keys", "-t", SESSION, "p")  # resume
        wait("resume", lambda s: " TRAINING " in s, 60, time.time())
        tmux("send-keys", "-t", SESSION, "t")
        time.sleep(1)
        tmux("send-keys", "-t", SESSION, "ROMEO:", "Enter")
        wait("first Talk token", lambda s: "weights of step" in s, 600, time.time())
        tmux("send-keys", "-t", SESSION, "Escape")
        time.sleep(0.5)
        tmux("send-keys", "-t", SESSION, "Escape")
        time.sleep(1)
        tmux("send-keys", "-t", SESSION, "s")
        wait("stop", lambda s: " STOPPED " in s, 600, time.time())
    finally:
        tmux("kill-session", "-t", SESSION)
        shutil.rmtree(work, ignore_errors=True)
    shown = ", ".join(f"{k} {'-' if v is None else f'{v:.1f} s'}" for k, v in figures.items())
    print(
        f"{args.size}: {shown} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); screens: {log_path}"
    )


if __name__ == "__main__":
    main()
