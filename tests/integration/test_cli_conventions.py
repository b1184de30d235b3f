"""CLI conventions: --version, completion, python -m workbench, presets NAME, --dry-run, --config,
run labels (--name/--tag/--notes), runs --json, meta.json's argv."""

from __future__ import annotations

import json

from command_line import gptbench, sets

from workbench import __version__, presets
from workbench.config import Config
from workbench.presets import tomllib  # tomli on Python 3.10


def one_line(text: str) -> str:
    return " ".join(text.split())  # Rich wraps at the terminal's width


def test_version_completion_and_python_m_workbench():
    out = gptbench("--version")
    assert out.returncode == 0 and out.stdout == f"gptbench {__version__}\n"
    helped = gptbench("--help")
    assert "--install-completion" in helped.stdout and "Usage: gptbench" in helped.stdout  # not "__main__.py"
    script = gptbench("--show-completion", "bash", env={"SHELL": "/bin/bash"})
    assert script.returncode == 0 and "_GPTBENCH_COMPLETE" in script.stdout


def test_presets_name_prints_the_resolved_config_that_runs_back(tmp_path):
    out = gptbench("presets", "shakespeare-char", "--set", "train.lr=6e-4")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# preset shakespeare-char: ") and out.stdout.splitlines()[0].endswith(
        "/shakespeare-char.toml"
    )
    table = tomllib.loads(out.stdout)
    expected = presets.resolve(presets.load("shakespeare-char"), ["train.lr=6e-4"], "cpu").to_dict()
    reread = Config.from_dict(table).to_dict()  # TOML has no null: None is written "auto" and reads back as None
    assert all(reread[section] == expected[section] for section in ("model", "data", "train", "log"))

    # the output is a config file: --config FILE alone is the whole preset
    config = tmp_path / "mine.toml"
    config.write_text(out.stdout)
    dry = gptbench("run", "--config", str(config), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert tomllib.loads(dry.stdout)["train"] == table["train"]

    # a user preset of the same name wins, and says so
    user = tmp_path / "presets"
    user.mkdir()
    (user / "addition.toml").write_text(
        'description = "mine"\n[model]\nn_layer = 1\nn_head = 1\nn_embd = 16\nblock_size = 6\n'
        '[data]\nkind = "addition"\ntokenizer = "digits"\n'
    )
    shadowed = gptbench("presets", "addition", env={"GPTBENCH_PRESETS": str(user)})
    assert f"# preset addition: {user / 'addition.toml'}" in shadowed.stdout
    assert "shadows the bundled one" in shadowed.stdout and tomllib.loads(shadowed.stdout)["model"]["n_layer"] == 1

    for args, words in {
        ("nope",): "Unknown preset 'nope'",
        ("addition", "--device", "tpu"): "--device must be cpu, cuda or mps",
    }.items():
        bad = gptbench("presets", *args)
        assert bad.returncode == 2 and words in one_line(bad.stderr) and "hint:" in bad.stderr


def test_dry_run_prints_config_params_tokens_and_device_and_starts_nothing(tmp_path):
    out = gptbench("run", "addition", "--dry-run", "--set", "train.batch_size=128", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    table = tomllib.loads(out.stdout)
    assert table["train"]["batch_size"] == 128 and table["model"]["n_layer"] == 3
    assert "# 87.98k parameters (87,984)" in out.stdout  # 3 layers of 48 wide, vocab 10 padded to 64
    assert "768 tokens/step = batch 128 x block 6 x 1 process x 1 micro-step" in out.stdout
    assert "cpu" in out.stdout and "float32" in out.stdout and "compile off" in out.stdout
    assert not (tmp_path / "runs").exists()  # nothing was created


def test_config_file_layers_over_a_preset_and_its_mistakes_are_explained(tmp_path):
    config = tmp_path / "short.toml"
    config.write_text("[train]\nmax_steps = 7\nlr = 1e-3\n[log]\ntensorboard = false\n")
    out = gptbench("run", "addition", "--config", str(config), "--set", "train.lr=2e-3", "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    train = tomllib.loads(out.stdout)["train"]
    assert (train["max_steps"], train["lr"], train["batch_size"]) == (7, 2e-3, 256)  # file over preset, --set over file

    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[train\nmax_steps = 7\n")
    bad_section = tmp_path / "section.toml"
    bad_section.write_text("[optimizer]\nlr = 1\n")
    bad_key = tmp_path / "key.toml"
    bad_key.write_text("[train]\nmax_step = 7\n")
    cases = {
        (str(tmp_path / "missing.toml"),): "does not exist",
        (str(bad_toml),): "could not be read",
        (str(bad_section),): "unknown section [optimizer]",
        (str(bad_key),): "Unknown config key 'train.max_step'",
    }
    for (path,), words in cases.items():
        out = gptbench("run", "addition", "--headless", "--config", path, cwd=tmp_path)
        said = one_line(out.stderr)
        assert out.returncode == 2 and words in said and "hint:" in said and "Traceback" not in said, said


def test_labels_are_stored_listed_and_meta_records_the_users_command(tmp_path):
    short = sets(["train.max_steps=10", "train.eval_every=10", "train.log_every=10"])
    out = gptbench(
        "run",
        "addition",
        "--headless",
        "--name",
        "Tiny Adder",
        "--tag",
        "smoke",
        "--tag",
        "cpu",
        "--notes",
        "checks the labels",
        *short,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("tiny-adder-")  # --name names the run dir too
    assert json.loads((run_dir / "labels.json").read_text()) == {
        "name": "Tiny Adder",
        "tags": ["smoke", "cpu"],
        "notes": "checks the labels",
    }
    argv = json.loads((run_dir / "meta.json").read_text())["argv"]
    assert argv[:3] == ["gptbench", "run", "addition"] and "--name" in argv  # the user's command, not the worker's

    listed = json.loads(gptbench("runs", "--json", cwd=tmp_path).stdout)
    assert [(r["name"], r["tags"], r["notes"], r["status"], r["step"]) for r in listed] == [
        ("Tiny Adder", ["smoke", "cpu"], "checks the labels", "completed", 10)
    ]
    table = gptbench("runs", cwd=tmp_path, env={"COLUMNS": "120"}).stdout
    assert "Tiny Adder #smoke #cpu" in table and "checks the labels" in table

    for args, words in {("--name", " "): "--name is empty", ("--tag", ""): "--tag is empty"}.items():
        bad = gptbench("run", "addition", "--headless", *args, cwd=tmp_path)
        assert bad.returncode == 2 and words in one_line(bad.stderr) and "hint:" in bad.stderr


def test_presets_at_80_columns_have_no_squeezed_column_and_no_blank_rows():
    out = gptbench("presets", env={"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.rstrip("\n").splitlines()
    assert all(len(line) <= 80 for line in lines) and "…" not in out.stdout
    rows = [line for line in lines if line.strip().startswith(("addition", "gpt2-124m", "shakespeare-char"))]
    assert len(rows) == 6  # each preset's figures, then its description
    described = " ".join(" ".join(lines[lines.index(rows[3]) :]).split())
    assert "2-digit addition (minGPT's adder), scored by exact match on held-out problems" in described
    figures = lines[lines.index(rows[0]) : lines.index(rows[2]) + 1]
    assert len(figures) == 3  # no wrapped, blank rows between them
