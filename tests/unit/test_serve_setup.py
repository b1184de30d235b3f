"""`gptbench serve` before it listens: a missing extra, the command each tab runs, the names it answers to."""

import shlex
import sys

import pytest

from workbench.commands.serve import HOST_HEADER, allowed_hosts, app_command, serve
from workbench.config import ConfigError


def test_a_missing_textual_serve_is_one_sentence_with_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    with pytest.raises(ConfigError) as refused:
        serve(None, "127.0.0.1", 8022, False)
    assert refused.value.message == "gptbench serve needs textual-serve, which is not installed."
    assert 'pip install -e ".[serve]"' in refused.value.hint


def test_each_tab_execs_the_app_view_only_when_asked(tmp_path):
    plain = shlex.split(app_command(None, view_only=False))
    assert plain == ["exec", sys.executable, "-m", "workbench"]  # exec: the app is the server's own child
    one_run = shlex.split(app_command(tmp_path / "my run", view_only=True))
    assert one_run == [
        "exec",
        "env",
        "GPTBENCH_VIEW_ONLY=1",
        sys.executable,
        "-m",
        "workbench",
        "attach",
        str(tmp_path / "my run"),
    ]


def test_host_headers_that_may_reach_the_page():
    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost"}
    for good in ("127.0.0.1:8022", "localhost", "[::1]:8022", "gpu-box.lan:8022"):
        assert HOST_HEADER.fullmatch(good)
    for bad in ("a b", 'x"><script>', "host:port", ""):
        assert not HOST_HEADER.fullmatch(bad)
