"""What each side may import: the UI and CLI never load torch; headless code never loads the UI stack."""

import subprocess
import sys

HEADLESS = ["workbench.cli", "workbench.commands.run", "workbench.commands.sample", "workbench.commands.list_runs",
            "workbench.commands.list_presets", "workbench.commands.bench", "workbench.commands.logs", "workbench.launcher", "workbench.runs",
            "workbench.events", "workbench.control", "workbench.config", "workbench.presets", "workbench.engine.tokenizers",
            "workbench.commands.export", "workbench.commands.dry_run", "workbench.commands.show_preset",
            "workbench.weights_source", "workbench.metric_sinks", "workbench.engine.hf_tokenizer",
            "workbench.commands.data", "workbench.commands.eval", "workbench.system_monitor",
            # the data-prep subprocess's workers import these: they must start without torch
            "workbench.engine.prepare", "workbench.engine.corpus", "workbench.engine.shards"]


def loaded_after_import(modules: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_cli_and_headless_modules_load_neither_torch_nor_textual():
    loaded = loaded_after_import(HEADLESS)
    assert "torch" not in loaded
    assert "textual" not in loaded


def test_cli_help_answers_without_torch():
    code = "import sys\nsys.argv=['gptbench','--help']\nfrom workbench.cli import app\ntry:\n    app()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr
    for verb in ("presets", "run", "sample", "runs", "logs", "attach", "bench", "export", "data", "eval"):
        assert verb in out.stdout
