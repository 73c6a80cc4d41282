"""The benchmarks run end to end (smoke tests: tiny sizes, no timing assertions) and write what they promise."""

import json
import os
import subprocess
import sys


def _run(args, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", *args, "--out", str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_kernel_benchmark_smoke(tmp_path):
    out = _run(["benchmarks.kernels", "--backends", "numpy,numba", "--repeats", "1", "--batch", "4"], tmp_path)
    assert "| numba | layer conv2d_1 |" in out and "matmul ceiling" in out
    report = json.loads((tmp_path / "kernels.json").read_text())
    assert {r["backend"] for r in report["results"]} == {"numpy", "numba"}
    assert report["machine"]["cpu_count"] >= 1 and (tmp_path / "kernels.png").stat().st_size > 1000


def test_training_benchmark_smoke(tmp_path):
    out = _run(["benchmarks.train", "--steps", "2", "--frameworks", "minicnn-numpy,minicnn-numba"], tmp_path)
    assert "| minicnn-numba |" in out and "extrapolated from 2 steps" in out
    report = json.loads((tmp_path / "train.json").read_text())
    rows = {r["framework"]: r for r in report["results"]}
    assert set(rows) == {"minicnn-numpy", "minicnn-numba"}
    assert all(r["epoch_s"] > 0 and r["peak_rss_mib"] > 0 for r in rows.values())
    assert min(r["vs_minicnn_best"] for r in rows.values()) == 1.0
    assert (tmp_path / "train.png").stat().st_size > 1000
