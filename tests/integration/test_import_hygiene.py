"""What each layer may import, checked in a fresh interpreter per layer.

- `data/` (corpora, shards, tokenizers) loads neither torch nor textual: the
  prep workers and the CLI read token data without paying for either. Of the
  core it takes the facts (config, run_files), not the fold of events into run
  state (run_state, and runs.py, which lists runs with it).
- `sweep/` loads neither: a sweep process only starts trainers and reads events.
- `commands/`, the top-level modules and `tui/` never load torch: the app and
  the CLI start instantly and the UI never stalls on training work.
- Headless code (`commands/` and the top-level modules) never loads textual.
- `engine/` (the torch side) never loads textual.
- The faces (`commands/`, `tui/`) and the core never load `engine/`: they start it as a subprocess.
"""

import pkgutil
import subprocess
import sys

import pytest

import workbench


def modules_of(package: str) -> list[str]:
    """Every module of `workbench.PACKAGE` ("" for the top-level modules only)."""
    if not package:
        return [f"workbench.{m.name}" for m in pkgutil.iter_modules(workbench.__path__) if not m.ispkg]
    root = __import__(f"workbench.{package}", fromlist=["_"])
    return [f"workbench.{package}"] + [m.name for m in pkgutil.walk_packages(root.__path__, f"workbench.{package}.")]


def loaded_after_import(modules: list[str], depth: int = 1) -> set[str]:
    """The packages loaded, named by their first `depth` parts (1: torch, 2: workbench.engine)."""
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {".".join(name.split(".")[:depth]) for name in out.stdout.split()}


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("data", {"torch", "textual"}),
        ("sweep", {"torch", "textual"}),
        ("commands", {"torch", "textual"}),
        ("", {"torch", "textual"}),
        ("tui", {"torch"}),
        ("engine", {"textual"}),
    ],
    ids=["data", "sweep", "commands", "top-level", "tui", "engine"],
)
def test_each_layer_loads_only_what_it_may(layer, forbidden):
    modules = [m for m in modules_of(layer) if m != "workbench.__main__"]
    assert modules
    assert not loaded_after_import(modules) & forbidden


def test_data_loads_only_the_core_facts():
    loaded = loaded_after_import(modules_of("data"), depth=2)
    assert "workbench.run_files" in loaded  # the check below would pass vacuously if names changed
    assert not loaded & {"workbench.run_state", "workbench.runs", "workbench.engine", "workbench.tui"}


@pytest.mark.parametrize("layer", ["commands", "tui", "sweep", ""], ids=["commands", "tui", "sweep", "top-level"])
def test_the_faces_and_the_core_never_load_the_engine(layer):
    modules = [m for m in modules_of(layer) if m != "workbench.__main__"]
    assert "workbench.engine" not in loaded_after_import(modules, depth=2)


def test_cli_help_answers_without_torch():
    code = (
        "import sys\nsys.argv=['gptbench','--help']\nfrom workbench.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr
    for verb in ("presets", "run", "sample", "runs", "logs", "attach", "bench", "export", "data", "eval", "sweep"):
        assert verb in out.stdout
