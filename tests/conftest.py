"""Shared test set-up.

Tests never touch the network: the tiny Shakespeare cache is seeded from
`../shared/data` (beside the repository) or from $GPTBENCH_TEST_SHAKESPEARE
(a copy of the text that travelled with the tree, as on a GPU machine), and
every test gets its own cache and config dirs so runs never leak into the
user's home. Without the text, the tests that train on it are skipped.
"""

import inspect
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
SHAKESPEARE = Path(os.environ.get("GPTBENCH_TEST_SHAKESPEARE") or SHARED_SHAKESPEARE)
# what the source of a test that trains on tiny Shakespeare names (TINY_CHAR: its shakespeare-char sizes)
NEEDS_SHAKESPEARE = ("shakespeare", "TINY_CHAR")


def pytest_collection_modifyitems(items):
    if SHAKESPEARE.is_file():
        return
    skip = pytest.mark.skip(
        reason=f"needs tiny Shakespeare at {SHAKESPEARE} (or its path in $GPTBENCH_TEST_SHAKESPEARE)"
    )
    for item in items:
        try:
            source = inspect.getsource(item.function)
        except (AttributeError, OSError, TypeError):  # not a Python test function, or no source
            source = ""
        if any(word in source for word in NEEDS_SHAKESPEARE) or "shakespeare" in item.name:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A gptbench cache with tiny Shakespeare already 'downloaded' (when the text is here)."""
    root = tmp_path_factory.mktemp("xdg-cache")
    target = root / "gptbench" / "tinyshakespeare" / "input.txt"
    target.parent.mkdir(parents=True)
    if SHAKESPEARE.is_file():
        shutil.copyfile(SHAKESPEARE, target)
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
