"""The benchmarks run end to end (smoke tests: tiny sizes, no timing assertions) and write what they promise."""

import json
import os
import subprocess
import sys


def _run(args, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-m", *args, "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=600
    )
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


def test_kernel_benchmark_has_a_speedup_column_against_numpy(tmp_path):
    _run(["benchmarks.kernels", "--backends", "numpy,numba", "--repeats", "1", "--batch", "2"], tmp_path)
    rows = json.loads((tmp_path / "kernels.json").read_text())["results"]
    numpy_rows = {r["what"]: r for r in rows if r["backend"] == "numpy"}
    compared = [r for r in rows if r["what"] in numpy_rows]  # numba's fused kernels have no NumPy twin
    assert {r["backend"] for r in compared} == {"numpy", "numba"}
    assert all("speedup" not in r for r in rows if r["what"] not in numpy_rows)
    for r in compared:
        base = numpy_rows[r["what"]]
        expected = (base["forward_ms"] + base["backward_ms"]) / (r["forward_ms"] + r["backward_ms"])
        assert abs(r["speedup"] - expected) <= 1e-9 * expected
    assert all(r["speedup"] == 1.0 for r in numpy_rows.values())


def test_sweep_smoke_batches_threads_ceiling_and_blas(tmp_path):
    out = _run(
        [
            "benchmarks.sweep",
            "--backends",
            "numpy,numba",
            "--batches",
            "2,4",
            "--threads",
            "1",
            "--thread-batch",
            "2",
            "--steps",
            "1",
        ],
        tmp_path,
    )
    report = json.loads((tmp_path / "sweep.json").read_text())
    points = {(r["sweep"], r["framework"], r["batch"], r["threads"]) for r in report["results"]}
    assert points == {("batch", fw, b, None) for fw in ("numpy", "numba") for b in (2, 4)} | {
        ("threads", fw, 2, 1) for fw in ("numpy", "numba")
    }
    assert all(r["train_images_s"] > 0 and r["infer_images_s"] > 0 for r in report["results"])
    flops = report["flops_per_image"]  # the tutorial's products: 7.74 MFLOP forward, training 3x minus conv1's dX
    assert flops["inference"] == 7_742_800 and flops["training"] == 3 * 7_742_800 - 921_600
    cpu = report["matmul_ceiling_gflops"]["cpu"]
    assert report["ceiling_images_s"]["cpu"]["training"] == cpu * 1e9 / flops["training"]
    assert any("scipy" in lib["used_by"] for lib in report["blas"]) and "BLAS (threadpoolctl)" in out
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_training_benchmark_contention_and_a_thread_count_per_framework(tmp_path):
    out = _run(["benchmarks.train", "--steps", "1", "--frameworks", "minicnn-numba@1", "--contention", "2"], tmp_path)
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["contention"] == 2 and "beside 2 busy processes" in out
    row = report["results"][0]
    assert row["framework"] == "minicnn-numba@1" and row["threads"] == 1 and row["numba_threads"]["threads"] == 1


def test_busy_processes_die_with_the_block(monkeypatch):
    # benchmarks/ is not installed with minicnn: it is imported from the project folder, as `python -m` does
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.contention import busy_processes

    with busy_processes(2) as pids:
        assert len(pids) == 2 and all(os.path.exists(f"/proc/{p}") for p in pids)
    assert not any(
        os.path.exists(f"/proc/{p}/status") and "zombie" not in open(f"/proc/{p}/status").read() for p in pids
    )
