"""`bash bench/gpu_leg.sh --rehearse`, run the way the GPU machine runs the leg: from a `git archive`
copy of HEAD that was never installed, by a Python that has torch, numpy, tiktoken, psutil and pytest
(with what they need) but not this project, with no ../shared beside the copy, no HOME and no git.
The GPU leg's script end to end on the CPU with tiny sizes, so that it cannot rot before a GPU
comes: every part must be ok and report its figures."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import math
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import REPO, SHAKESPEARE
from packaging.requirements import Requirement

spec = importlib.util.spec_from_file_location("gpu_leg", REPO / "bench" / "gpu_leg.py")
gpu_leg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_leg)

# What the GPU machine has that the leg uses (it also has rich, typer, transformers: unused here).
DISTRIBUTIONS = ("torch", "numpy", "tiktoken", "psutil", "pytest")
TOOLS = ("bash", "dirname")  # all the leg's script runs besides Python; no git


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def required_closure(names) -> list[importlib.metadata.Distribution]:
    """The installed distributions `names` need to import, theirs included (no extras)."""
    found, todo = {}, list(names)
    while todo:
        try:
            dist = importlib.metadata.distribution(todo.pop())
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional requirement, not installed
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(found.values())


def bare_python(root: Path) -> Path:
    """A venv that sees the closure of DISTRIBUTIONS (linked into its site-packages) and nothing else:
    not this project's editable install, whose finder would serve workbench.bundled_presets."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next(root.glob("lib/python*/site-packages"))
    for dist in required_closure(DISTRIBUTIONS):
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            if not (site / top).exists():
                (site / top).symlink_to(Path(dist.locate_file(top)).resolve())
    return root / "bin" / "python"


def archive(treeish: str, dest: Path) -> Path:
    """`git archive` of this repository's `treeish`, unpacked: what a copy of the tree holds."""
    if shutil.which("git") is None:
        pytest.skip("needs git to archive the tree")
    out = subprocess.run(["git", "archive", "--format=tar", treeish], cwd=REPO, capture_output=True, check=False)
    if out.returncode:
        pytest.skip(f"cannot archive {treeish}: {out.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(dest, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))  # 3.12+: explicit
    return dest


def rehearse_bare(treeish: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """The rehearsal from a bare copy of `treeish`: (the script's run, the results folder)."""
    if not SHAKESPEARE.is_file():
        pytest.skip(f"needs tiny Shakespeare at {SHAKESPEARE}")
    tree = archive(treeish, tmp_path / "copy" / "tree")  # nothing beside it: no ../shared
    python = bare_python(tmp_path / "venv")
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in TOOLS:
        (tools / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(tools), "PYTHON": str(python), "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8"}  # no HOME

    probe = "import importlib.util as u, workbench; print(workbench.__file__, u.find_spec('workbench.bundled_presets'))"
    seen = subprocess.run(
        [python, "-c", probe], env={**env, "PYTHONPATH": str(tree)}, cwd=tmp_path, capture_output=True, text=True
    )
    assert seen.stdout.split() == [str(tree / "workbench" / "__init__.py"), "None"], seen.stdout + seen.stderr

    out = subprocess.run(
        ["bash", str(tree / "bench" / "gpu_leg.sh"), "--rehearse", "--text", str(SHAKESPEARE)]
        + ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=tmp_path,
        env=env,
    )
    return out, tmp_path / "out"


def test_rehearsal_from_a_bare_copy_writes_every_figure(tmp_path):
    out, results_dir = rehearse_bare("HEAD", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    [results] = results_dir.glob("*-cpu-rehearse.json")
    report = json.loads(results.read_text())
    log = results.with_suffix(".log").read_text()
    assert report["rehearse"] is True and report["device_name"] == "cpu" and report["torch"]
    assert report["installed"] is False and report["git_sha"] is None and "git" in report
    assert report["home"].startswith("unset") and report["text"]["found"] is True
    for part in gpu_leg.PARTS:
        assert report[part]["ok"] is True, (part, report[part])
        assert "error" not in report[part] and "skipped" not in report[part], (part, report[part])
        assert report[part]["torch"] == report["torch"], part
        assert f"===== {part} " in log

    for part, (batch, loss, attention) in gpu_leg.THROUGHPUT.items():
        r = report[part]
        assert positive(r["tokens_per_sec"]) and positive(r["step_ms"]) and r["intervals_timed"] >= 2, r
        assert r["loss"] == loss and r["attention"] == attention and r["steps_done"] == 4
        assert r["micro_batch"] * r["grad_accum"] == 8 and r["tokens_per_step"] == 256  # 8 sequences of 32
        assert r["micro_batch"] in (8, 4, 2, 1) if batch == "auto" else r["micro_batch"] == 2  # auto: timed
        assert r["micro_batch_how"] if batch == "auto" else r["micro_batch_how"] is None
        profile = r["profile"]
        assert set(profile["share"]) == {"loss", "attention", "optimizer", "matmuls", "rest"}
        assert abs(sum(profile["share"].values()) - 1) < 0.01
        for group in ("loss", "attention", "optimizer", "matmuls"):
            assert positive(profile["ms"][group]), (part, group, profile)
        assert any("linear_cross_entropy" in op for op in profile["ops"]["loss"]) == (loss == "fused")

    kernels = report["loss_kernels"]
    for name in ("fused", "plain"):
        assert positive(kernels[name]["ms"]) and abs(kernels[name]["loss_minus_fused"]) < 1e-4
    for name, package in (("liger", "liger_kernel"), ("cce", "cut_cross_entropy")):
        assert kernels[name] == {"skipped": f"{package.replace('_', '-')} is not installed"}, kernels[name]
    auto = kernels["auto_on_cuda"]
    assert auto["loss"] in ("fused", "plain") and auto["why"].startswith("workbench/engine/loss.py: ")
    assert "train.loss=auto on CUDA: " in log

    decode = report["decode"]
    assert decode["new_tokens"] == 16 and positive(decode["decode_tokens_per_sec"])
    assert positive(decode["served_tokens_per_sec"]) and decode["served_cuda_graph"] is False
    assert "passed" in report["pytest"]["summary"] or "skipped" in report["pytest"]["summary"]
    addition = report["addition"]
    assert addition["steps_done"] == 5 and "accuracy" in addition["metrics"]
    shakespeare = report["shakespeare"]
    assert shakespeare["target_reached"] and positive(shakespeare["time_to_target_s"])
    assert shakespeare["best_val_loss"] <= 3.3 and shakespeare["best_val_step"] >= 20
    assert positive(shakespeare["best_val_at_s"])

    checks = report["checks"]
    assert checks["all_ok"] is True, checks
    assert checks["resume"]["step"] == 20 and checks["loss_on_device"]["grad_w_rel_err"] < 1e-4
    assert checks["fused_adamw"]["fused"] == [True, True]
    assert "compile_s_ratio" in report and positive(report["wall_s"]) and report["wall_s"] < report["budget_s"]
