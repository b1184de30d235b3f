"""`gptbench bench --tiny`: the benchmark harness end to end on the CPU."""

import json
import subprocess
import sys


def test_tiny_bench_writes_results_and_raw_log(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "bench",
            "shakespeare-char",
            "addition",
            "--tiny",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    [result_file] = tmp_path.glob("*-tiny.json")
    report = json.loads(result_file.read_text())
    assert report["device_name"].startswith("cpu") and report["versions"]["torch"]
    for name in ("shakespeare-char", "addition"):
        r = report["results"][name]
        assert r["tokens_per_sec"] > 0 and r["step_ms"] > 0 and r["decode_tokens_per_sec"] > 0
        assert r["mfu"] is None  # no peak FLOPs for a CPU: MFU is not made up
        assert r["config"]["preset"] == name
    shk = report["results"]["shakespeare-char"]["time_to_target"]
    assert shk["reached"] and shk["time_to_target_s"] > 0 and shk["val_loss"] <= 3.3
    raw = result_file.with_suffix(".log").read_text().splitlines()
    assert any('"event": "run_started"' in line for line in raw)


def test_device_peak_table_matches_names():
    from workbench.engine.device import peak_flops

    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert peak_flops("NVIDIA L4") == 121e12
    assert peak_flops("cpu (2 threads)") is None
