"""`gptbench serve [RUN_DIR]`: the app in a browser, behind a token.

textual-serve (by Textual's authors) runs one app process per websocket, that
is per browser tab, and carries its terminal to xterm.js in the page. This
module adds what a network listener needs in a project where whoever drives the
app can launch, stop and kill training:

- a random token in the one URL printed at start. The page (`/`) takes it and
  answers with an HttpOnly, SameSite=Strict cookie; every other request, the
  websocket included, needs that cookie. Anything else gets 403 before an app
  process is started. Another site's page can neither read the cookie nor
  send it (SameSite=Strict), so it cannot open the websocket in your browser;
- a Host check against DNS rebinding: a page on a name that an attacker points
  at 127.0.0.1 sends that name in Host and is refused; an Origin naming
  another site is refused too;
- 127.0.0.1 by default; `--host 0.0.0.0` says to tunnel over SSH instead;
- `--view-only`: the app processes refuse every control (GPTBenchApp.allows).

A closed tab ends its app process the way "leave running" does: trainers run
in their own sessions and outlive the app. Ctrl-C ends every app process,
never a trainer.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import re
import secrets
import shlex
import socket
import sys
from pathlib import Path

import psutil

from ..config import ConfigError
from ..runs import require_run_dir

log = logging.getLogger("gptbench.serve")
TUNNEL_HINT = "ssh -L {port}:localhost:{port} user@{machine}"
APP_EXIT_S = 5  # at shutdown, how long app processes get to exit before they are killed


def app_command(run_dir: Path | None, view_only: bool) -> str:
    """The shell command textual-serve runs per tab: `exec`, so the app itself is the server's child."""
    from ..tui.app import VIEW_ONLY_ENV  # textual: only once serving (headless verbs never load it)

    argv = [sys.executable, "-m", "workbench"]
    if run_dir is not None:
        argv += ["attach", str(run_dir.resolve())]
    if view_only:
        argv = ["env", f"{VIEW_ONLY_ENV}=1", *argv]
    return "exec " + shlex.join(argv)


# host, host:port, [v6], [v6]:port; nothing else reaches the page's template
HOST_HEADER = re.compile(r"([\w.-]+|\[[0-9a-fA-F:.]+\])(:\d+)?")


def allowed_hosts(host: str) -> set[str]:
    """Names the Host header may carry (IP literals always may: they cannot be rebound)."""
    names = {"localhost", host}
    if host in ("0.0.0.0", "::"):
        names |= {socket.gethostname(), socket.getfqdn()}
    return {n.lower() for n in names}


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def serve(run_dir: Path | None, host: str, port: int, view_only: bool) -> int:
    try:
        from aiohttp import web
        from textual_serve.server import Server, to_int
    except ImportError:
        raise ConfigError(
            "gptbench serve needs textual-serve, which is not installed.",
            'pip install -e ".[serve]" (or pip install "textual-serve>=1.1").',
        ) from None
    if run_dir is not None:
        run_dir = require_run_dir(run_dir)
    import aiohttp_jinja2
    from yarl import URL

    token = secrets.token_urlsafe(32)
    cookie = f"gptbench_serve_{port}"  # cookies ignore ports: one name per server on this machine
    hosts = allowed_hosts(host)

    def host_ok(value: str | None) -> bool:
        if not value or not HOST_HEADER.fullmatch(value):
            return False
        name = URL(f"http://{value}").host or ""
        return is_ip(name) or name.lower() in hosts

    def token_ok(value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), token.encode())

    def refuse(request: web.Request, why: str) -> web.Response:
        log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote, why)
        return web.Response(status=403, text=f"403: {why}. Open the URL that `gptbench serve` printed.\n")

    @web.middleware
    async def guard(request: web.Request, handler):
        if not host_ok(request.host):
            return refuse(request, f"Host {request.host!r} is not this server's name")
        origin = request.headers.get("Origin")
        if origin and not host_ok(URL(origin).raw_authority):
            return refuse(request, f"Origin {origin!r} is another site")
        if token_ok(request.cookies.get(cookie)):
            return await handler(request)
        # The token is taken on the page only; the page's answer hands the browser the cookie.
        if request.path == "/" and token_ok(request.query.get("token")):
            response = await handler(request)
            response.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
            return response
        return refuse(request, "no valid token")

    class GuardedServer(Server):
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(guard)
            return app

        async def handle_index(self, request: web.Request) -> web.Response:
            # textual-serve builds the page's URLs from one public URL; these follow the Host the
            # browser used (checked above), so a tunnel's localhost:PORT gets its cookie on the websocket.
            origin = f"{request.scheme}://{request.host}"
            context = {
                "font_size": to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": f"{'wss' if request.secure else 'ws'}://{request.host}/ws",
                "config": {"static": {"url": f"{origin}/static/"}},
                "application": {"name": self.title},
            }
            return aiohttp_jinja2.render_template("app_index.html", request, context)

        def initialize_logging(self) -> None:
            logging.basicConfig(level=logging.WARNING, format="%(message)s")

        async def on_startup(self, app: web.Application) -> None:
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            what = f"{run_dir}" if run_dir else "the app"
            print(f"gptbench serve: {what}, one app process per browser tab{' (view only)' if view_only else ''}.")
            if shown != host:
                tunnel = TUNNEL_HINT.format(port=port, machine=socket.gethostname())
                print(f"Listening on every interface; safer: bind 127.0.0.1 and tunnel: {tunnel}")
            print(f"Open: http://{shown}:{port}/?token={token}")
            print("Ctrl-C ends every app process; training runs go on.", flush=True)

        async def on_shutdown(self, app: web.Application) -> None:
            # The app processes are this server's children (trainers are theirs, in their own
            # sessions). SIGTERM makes an app exit as "leave running" does.
            children = psutil.Process().children()
            for child in children:
                try:
                    child.terminate()
                except psutil.NoSuchProcess:
                    pass
            _, alive = await asyncio.to_thread(psutil.wait_procs, children, APP_EXIT_S)
            for child in alive:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass

    check_can_listen(host, port)  # before the URL is printed
    GuardedServer(app_command(run_dir, view_only), host=host, port=port, title="gptbench").serve()
    return 0


def check_can_listen(host: str, port: int) -> None:
    """A taken port, or an address that is not this machine's, as one sentence."""
    try:
        socket.create_server((host, port)).close()  # SO_REUSEADDR, as aiohttp binds
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(
            f"Could not listen on {host}:{port}: {why}.",
            "pick a free port (--port 8023) and an address of this machine (--host 127.0.0.1).",
        ) from None
