"""`bash bench/gpu_leg.sh --rehearse`: the GPU leg's script, end to end on the CPU with tiny sizes,
so that it cannot rot before a GPU comes. Every part must run and report its figures."""

import importlib.util
import json
import math
import os
import subprocess
import sys

from conftest import REPO

spec = importlib.util.spec_from_file_location("gpu_leg", REPO / "bench" / "gpu_leg.py")
gpu_leg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_leg)


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_rehearsal_writes_every_figure(tmp_path):
    out = subprocess.run(
        [
            "bash",
            str(REPO / "bench" / "gpu_leg.sh"),
            "--rehearse",
            "--out",
            str(tmp_path),
            "--work",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    [results] = tmp_path.glob("*-cpu-rehearse.json")
    report = json.loads(results.read_text())
    log = results.with_suffix(".log").read_text()
    assert report["rehearse"] is True and report["device_name"] == "cpu" and report["torch"]
    for part in gpu_leg.PARTS:
        assert part in report, part
        assert "error" not in report[part] and "skipped" not in report[part], (part, report[part])
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
        if gpu_leg.installed(package):  # CUDA-only kernels: timed on a GPU, an error on the CPU, never silent
            assert positive(kernels[name].get("ms")) or kernels[name].get("error"), (name, kernels[name])
        else:
            assert kernels[name] == {"skipped": f"{package.replace('_', '-')} is not installed"}, kernels[name]

    assert report["decode"]["new_tokens"] == 16 and positive(report["decode"]["decode_tokens_per_sec"])
    addition = report["addition"]
    assert addition["steps_done"] == 5 and "accuracy" in addition["metrics"]
    shakespeare = report["shakespeare"]
    assert shakespeare["target_reached"] and positive(shakespeare["time_to_target_s"])
    assert shakespeare["best_val_loss"] <= 3.3

    checks = report["checks"]
    assert checks["all_ok"] is True, checks
    assert checks["resume"]["step"] == 20 and checks["loss_on_device"]["grad_w_rel_err"] < 1e-4
    assert "compile_s_ratio" in report and positive(report["wall_s"])
