"""Shared test set-up.

Tests never touch the network: the tiny Shakespeare cache is seeded from
`../shared/data` (beside the repository), and every test gets its own cache
and config dirs so runs never leak into the user's home.
"""

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A gptbench cache with tiny Shakespeare already 'downloaded'."""
    root = tmp_path_factory.mktemp("xdg-cache")
    target = root / "gptbench" / "tinyshakespeare" / "input.txt"
    target.parent.mkdir(parents=True)
    shutil.copyfile(SHARED_SHAKESPEARE, target)
    return root


@pytest.fixture(autouse=True)
def isolated_dirs(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("GPTBENCH_PRESETS", raising=False)
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    # One thread per trainer: on a 2-core machine that also runs the test
    # process (and maybe another job), full thread counts slow everything 10-30x.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
