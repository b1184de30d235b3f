"""What does a browser tab on `gptbench serve` cost the GPU box? The server's CPU per open tab.

    python bench/serve_overhead.py [--seconds 30] [--repeats 3] [--tabs 1 2] [--out bench/results/serve_overhead.json]

Method (the app's own cost, bench/ui_overhead.py, measured the same way: CPU
time over wall time while a live shakespeare-char run is watched):
- one live run: `gptbench run shakespeare-char --headless --detach`, the CPU
  profile on tiny Shakespeare from ../shared, long enough to outlast the
  measurement (stopped through its control FIFO at the end);
- `gptbench serve RUN_DIR`: every tab attaches to that run, so the trainer is
  not the server's descendant and is never counted;
- Debian's headless Chromium (Playwright, the page 1200x700 pixels), N tabs
  open on the run's dashboard; once each shows steps, a few seconds to settle,
  then SECONDS of watching, hands off;
- the cost: user + system CPU time of the serve process and its app
  processes (one per tab) over that window, as a share of one core; per tab =
  that share / N. The browser's own CPU is not counted (it runs on the laptop);
- REPEATS rounds, each measuring every N in turn; the load average is recorded
  before each window, to tell a noisy neighbour from a slow server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from playwright.sync_api import sync_playwright

from workbench.control import send_command
from workbench.runs import read_events

SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"
CHROMIUM = os.environ.get("GPTBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
SETTLE_S = 5.0
# As in tests/integration/test_serve.py: the page's xterm.js Terminal, caught as it is made, read as text.
CATCH_TERMINAL = """Object.defineProperty(Object.prototype, "terminal", {configurable: true, set(value) {
  Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
  if (value && value.buffer) window.__terminal = value; }});"""
READ_TERMINAL = """() => { const t = window.__terminal; if (!t) return ""; const b = t.buffer.active, rows = [];
  for (let i = 0; i < t.rows; i++) rows.push(b.getLine(b.viewportY + i)?.translateToString(true) ?? "");
  return rows.join("\\n"); }"""


def wait_for(condition, what: str, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_run(root: Path) -> Path:
    run_dir = root / "watched"
    overrides = ["train.max_steps=100000", "train.eval_every=100000", "train.log_every=10", "train.device=cpu"]
    if SHARED_TEXT.exists():
        overrides.append(f"data.path={SHARED_TEXT}")
    argv = [sys.executable, "-m", "workbench", "run", "shakespeare-char", "--headless", "--detach"]
    argv += ["--run-dir", str(run_dir), *(a for o in overrides for a in ("--set", o))]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wait_for(lambda: any(e["event"] == "step" for e in read_events(run_dir)), "the run's first step")
    return run_dir


def start_server(run_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "workbench", "serve", str(run_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in server.stdout:
        if line.startswith("Open: "):
            threading.Thread(target=server.stdout.read, daemon=True).start()  # never let its pipe fill up
            return server, line.split()[1]
    raise RuntimeError("gptbench serve printed no URL")


def measure(browser, server: subprocess.Popen, url: str, tabs: int, seconds: float) -> dict:
    context = browser.new_context(viewport={"width": 1200, "height": 700})
    context.add_init_script(CATCH_TERMINAL)
    pages = []
    for _ in range(tabs):
        page = context.new_page()
        page.goto(url, wait_until="domcontentloaded")
        pages.append(page)
    for page in pages:
        wait_for(lambda p=page: re.search(r"│ step\s+[1-9]", p.evaluate(READ_TERMINAL)), "steps on the page")
    size = pages[0].evaluate("() => [window.__terminal.cols, window.__terminal.rows]")
    time.sleep(SETTLE_S)
    serve = psutil.Process(server.pid)
    apps = serve.children()
    assert len(apps) == tabs, f"{len(apps)} app processes for {tabs} tabs"
    counted = [serve, *apps]
    loadavg = os.getloadavg()[0]
    wall, cpu = time.monotonic(), cpu_seconds(counted)
    time.sleep(seconds)  # hands off: a person watching
    share = (cpu_seconds(counted) - cpu) / (time.monotonic() - wall)
    context.close()
    wait_for(lambda: not serve.children(), "the app processes to end with their tabs")
    return {"tabs": tabs, "terminal": size, "loadavg": loadavg, "cpu_share": share, "per_tab": share / tabs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tabs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path, default=Path("bench/results/serve_overhead.json"))
    args = p.parse_args()

    windows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        run_dir = start_run(Path(tmp))
        server, url = start_server(run_dir)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for i in range(args.repeats):
                for tabs in args.tabs:
                    w = measure(browser, server, url, tabs, args.seconds)
                    windows.append({"round": i + 1, **w})
                    print(
                        f"round {i + 1}: {tabs} tab(s), {w['terminal'][0]}x{w['terminal'][1]}: serve + apps "
                        f"{100 * w['cpu_share']:.1f}% of one core, {100 * w['per_tab']:.1f}% per tab "
                        f"(load {w['loadavg']:.1f})",
                        flush=True,
                    )
        finally:
            browser.close()
            server.terminate()
            server.wait(30)
            send_command(run_dir, "stop")
            steps = [e for e in read_events(run_dir) if e["event"] == "step"]
    result = {
        "preset": "shakespeare-char",
        "seconds": args.seconds,
        "settle_s": SETTLE_S,
        "windows": windows,
        "per_tab_median": {
            str(n): statistics.median(w["per_tab"] for w in windows if w["tabs"] == n) for n in args.tabs
        },
        "trainer_tok_s_median": statistics.median(e["tokens_per_sec"] for e in steps[3:]),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "note": "2-core machine shared with other jobs while measured",
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    medians = ", ".join(f"{n} tab(s) {100 * v:.1f}%" for n, v in result["per_tab_median"].items())
    print(f"median per tab: {medians} of one core")


if __name__ == "__main__":
    main()
