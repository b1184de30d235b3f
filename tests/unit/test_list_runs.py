"""`gptbench runs`: the table fits the terminal and never cuts a run's name."""

import shutil
from pathlib import Path

from rich.console import Console

from workbench.commands.list_runs import runs_table
from workbench.runs import list_runs

FIXTURES = Path(__file__).parents[1] / "fixtures" / "runs"


def rendered(root: Path, width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    console.print(runs_table(root, list_runs(root), console))
    return console.export_text()


def test_the_run_name_stays_whole_at_80_columns(tmp_path):
    names = ["shakespeare-char-20261123-101500", "addition-20261123-101500-2"]
    for name, fixture in zip(names, ("addition-completed", "addition-lr1e-3")):
        shutil.copytree(FIXTURES / fixture, tmp_path / name)
    text = rendered(tmp_path, 80)
    lines = text.splitlines()
    for name in names:
        assert any(name in line for line in lines), text  # on one line, not folded or cut
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert "completed" in text and "300/300" in text
    wide = rendered(tmp_path, 200)
    assert "preset" in wide and "started" in wide  # room enough: every column


def test_at_80_columns_the_metric_stays_and_a_line_names_what_was_left_out(tmp_path):
    for name, fixture in zip(
        ["shakespeare-char-20261123-101500", "addition-20261123-101500-2"], ("addition-completed", "addition-lr1e-3")
    ):
        shutil.copytree(FIXTURES / fixture, tmp_path / name)
    text = rendered(tmp_path, 80)
    assert "accuracy 0.504" in text and "accuracy 0.398" in text, text
    assert "preset, started: left out at 80 columns" in text
    assert "left out" not in rendered(tmp_path, 200)
