"""`gptbench serve` as a person uses it: the real server, Debian's Chromium (headless,
driven by Playwright, never a downloaded browser), real trainers.

The page draws the terminal on a canvas, so the tests read what it shows from
xterm.js's own buffer (the terminal object is caught as the page creates it).
Waits poll with ceilings far above what an idle machine needs: these must pass
on a loaded 2-core machine.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from workbench.control import CONTROL_FILE, send_command
from workbench.run_files import LAST_CKPT
from workbench.runs import read_events

pytest.importorskip("textual_serve", reason='textual-serve is not installed (pip install -e ".[serve]")')
sync_api = pytest.importorskip("playwright.sync_api", reason='playwright is not installed (pip install -e ".[test]")')

CHROMIUM = Path(os.environ.get("GPTBENCH_CHROMIUM", "/usr/bin/chromium"))
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's: apt-get install chromium)"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where README's screenshot comes from: GPTBENCH_SERVE_SCREENSHOT=docs/serve.png pytest tests/integration/test_serve.py
SCREENSHOT_ENV = "GPTBENCH_SERVE_SCREENSHOT"
BOOTED_S = 120.0  # ceilings: an app process and a trainer start on a loaded machine

# textual.js keeps its xterm.js Terminal to itself; catch it where the page assigns `this.terminal`.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer) window.__terminal = value;
  },
});
"""
READ_TERMINAL = """() => {
  const t = window.__terminal;
  if (!t) return "";
  const buffer = t.buffer.active, rows = [];
  for (let i = 0; i < t.rows; i++) rows.push(buffer.getLine(buffer.viewportY + i)?.translateToString(true) ?? "");
  return rows.join("\\n");
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout: float = BOOTED_S):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


class Served:
    """`gptbench serve ARGS` in its own process group (so a test can Ctrl-C it as a terminal would)."""

    def __init__(self, tmp_path: Path, *args: str):
        self.port = free_port()
        self.runs = tmp_path / "runs"
        presets = tmp_path / "presets"
        presets.mkdir(exist_ok=True)
        # A user preset named addition shadows the bundled one: the same model, logged often, a run
        # far longer than any test (each ends it through its control FIFO).
        bundled = (Path(__file__).resolve().parents[2] / "presets" / "addition.toml").read_text()
        short = {
            "max_steps = 1000": "max_steps = 100000",
            "eval_every = 200": "eval_every = 100",
            "log_every = 25": "log_every = 5",
        }
        for old, new in short.items():
            assert old in bundled
            bundled = bundled.replace(old, new)
        (presets / "addition.toml").write_text(bundled)
        env = {**os.environ, "GPTBENCH_PRESETS": str(presets), "GPTBENCH_RUNS": str(self.runs), "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench", "serve", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
        self.printed = []
        for line in self.process.stdout:
            self.printed.append(line)
            if line.startswith("Open: "):
                break
        assert self.printed and self.printed[-1].startswith("Open: "), "".join(self.printed)
        self.url = self.printed[-1].split()[1]
        self.token = self.url.split("token=")[1]
        wait_for(self.listening, "the server to listen", 30)

    def listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def apps(self) -> list[psutil.Process]:
        """The app processes: the server's children."""
        return psutil.Process(self.process.pid).children()

    def ctrl_c(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group
        return self.process.wait(timeout=60)

    def close(self) -> None:
        if self.process.poll() is None:
            self.ctrl_c()


@pytest.fixture
def serve(tmp_path):
    servers: list[Served] = []

    def start(*args: str) -> Served:
        servers.append(Served(tmp_path, *args))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Tab:
    """One browser tab on the served app, read as the page shows it."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1200, "height": 700})  # fresh cookies
        self.context.add_init_script(CATCH_TERMINAL)
        self.page = self.context.new_page()
        self.page.goto(url, wait_until="domcontentloaded")

    def text(self) -> str:
        return self.page.evaluate(READ_TERMINAL)

    def wait_for(self, pattern: str, timeout: float = BOOTED_S) -> re.Match:
        return wait_for(lambda: re.search(pattern, self.text()), f"{pattern!r} on the page", timeout)

    def step(self) -> int:
        """The stats panel's step count (0 until there is one)."""
        found = re.search(r"│ step\s+([\d,]+)", self.text())
        return int(found[1].replace(",", "")) if found else 0

    def press(self, key: str) -> None:
        self.page.focus("textarea.xterm-helper-textarea")
        self.page.keyboard.press(key)

    def close(self) -> None:
        self.context.close()


def trainer_of(run_dir: Path) -> psutil.Process:
    started = next(e for e in read_events(run_dir) if e["event"] == "status" and "pid" in e)
    return psutil.Process(started["pid"])


def steps_logged(run_dir: Path) -> int:
    return sum(e["event"] == "step" for e in read_events(run_dir))


def still_training(run_dir: Path, trainer: psutil.Process, what: str) -> None:
    """The trainer is alive and its steps go on (its pipe to the app is gone: it writes to the run dir)."""
    before = steps_logged(run_dir)
    wait_for(lambda: steps_logged(run_dir) > before, f"steps after {what}", 60)
    assert trainer.is_running(), f"{what} ended the trainer"


def test_launch_in_the_browser_then_close_the_tab_and_ctrl_c_the_server(serve, browser, tmp_path):
    server = serve()
    tab = Tab(browser, server.url)
    tab.wait_for("pick a preset")
    [app] = server.apps()  # this tab's own app process
    tab.press("l")  # addition is the first preset
    other = Tab(browser, server.url)  # a second tab, for Ctrl-C below (it starts while the trainer does)

    run_dir = wait_for(lambda: next(server.runs.glob("addition-*"), None), "a run directory")
    tab.wait_for(r"TRAINING")
    shown = 150 if os.environ.get(SCREENSHOT_ENV) else 1  # README's picture shows some curve
    wait_for(lambda: tab.step() >= shown, f"step {shown} in the stats panel")
    shot = tmp_path / "serve.png"
    tab.page.screenshot(path=shot)
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])
    # the run's command FIFO stays owner-only, whoever reaches the page
    assert stat.S_IMODE((run_dir / CONTROL_FILE).stat().st_mode) == 0o600

    trainer = trainer_of(run_dir)
    other.wait_for("pick a preset")
    apps = server.apps()
    assert len(apps) == 2  # one per tab
    tab.close()
    wait_for(lambda: not app.is_running(), "the tab's app process to end", 60)
    assert server.apps() == [p for p in apps if p != app]  # the other tab's goes on
    still_training(run_dir, trainer, "closing the tab")

    # Ctrl-C on serve: every app process ends, no trainer does.
    assert server.ctrl_c() == 0
    wait_for(lambda: not any(p.is_running() for p in apps), "the app processes to end", 30)
    still_training(run_dir, trainer, "Ctrl-C on serve")
    other.close()

    send_command(run_dir, "stop")  # as `gptbench attach` would: the run ends as any run does
    finished = wait_for(lambda: [e for e in read_events(run_dir) if e["event"] == "run_finished"], "run_finished")
    assert finished[0]["reason"] == "stopped" and (run_dir / LAST_CKPT).exists()
    trainer.wait(60)


def http(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """One GET on a raw socket (Host and the websocket upgrade exactly as given); the status and headers."""
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall("\r\n".join(lines).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    status, *fields = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    return int(status.split()[1]), dict(f.split(": ", 1) for f in fields)


WEBSOCKET = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}


def test_without_the_token_nothing_is_served_and_no_app_starts(serve):
    server = serve()
    here = f"127.0.0.1:{server.port}"
    key = {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    cookie = {"Cookie": f"gptbench_serve_{server.port}={server.token}"}
    refused = {
        "no token": ("/", {"Host": here}),
        "a wrong token": ("/?token=" + "x" * len(server.token), {"Host": here}),
        "the websocket without the cookie": ("/ws", {"Host": here, **WEBSOCKET, **key}),
        "the token only on the websocket": (f"/ws?token={server.token}", {"Host": here, **WEBSOCKET, **key}),
        "the page's script without the cookie": ("/static/js/textual.js", {"Host": here}),
        "another host's name (DNS rebinding)": (f"/?token={server.token}", {"Host": f"evil.example:{server.port}"}),
        "the websocket under another host's name": (
            "/ws",
            {"Host": f"evil.example:{server.port}", **WEBSOCKET, **key, **cookie},
        ),
        "the websocket from another site's page": (
            "/ws",
            {"Host": here, "Origin": "http://evil.example", **WEBSOCKET, **key, **cookie},
        ),
    }
    for what, (path, headers) in refused.items():
        status, _ = http(server.port, path, headers)
        assert status == 403, what
        assert server.apps() == [], f"{what}: an app process started"

    # The right token on the page: 200 and the cookie, which then opens the websocket (and starts an app).
    status, answer = http(server.port, f"/?token={server.token}", {"Host": f"localhost:{server.port}"})
    assert status == 200
    assert answer["Set-Cookie"].startswith(f"gptbench_serve_{server.port}={server.token};")
    assert "HttpOnly" in answer["Set-Cookie"] and "SameSite=Strict" in answer["Set-Cookie"]
    status, _ = http(server.port, "/ws", {"Host": here, **WEBSOCKET, **key, **cookie})
    assert status == 101
    wait_for(lambda: len(server.apps()) == 1, "an app process for the websocket")
    wait_for(lambda: server.apps() == [], "the app process to end with its websocket", 60)


def test_every_interface_says_to_tunnel_and_answers_to_the_machines_name(serve):
    server = serve("--host", "0.0.0.0")
    said = "".join(server.printed)
    assert f"ssh -L {server.port}:localhost:{server.port} user@" in said
    assert server.url.startswith(f"http://127.0.0.1:{server.port}/?token=")
    page = f"/?token={server.token}"
    assert http(server.port, page, {"Host": f"{socket.gethostname()}:{server.port}"})[0] == 200
    assert http(server.port, page, {"Host": f"evil.example:{server.port}"})[0] == 403


def test_view_only_refuses_a_launch_in_the_page(serve, browser):
    server = serve("--view-only")
    tab = Tab(browser, server.url)
    tab.wait_for("pick a preset")
    tab.press("l")
    tab.wait_for(r"View only: launch refused")
    tab.press("Tab")  # to the config keys: enter would edit one
    tab.press("Enter")
    tab.wait_for(r"View only: config edit refused")
    assert not server.runs.exists() or not any(server.runs.iterdir())
    tab.close()
