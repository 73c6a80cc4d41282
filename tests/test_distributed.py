"""Data-parallel training on MPI (minicnn.distributed).

Without MPI: the shard slicing, the flat buffer, the launch detection, dropout's global-batch masks and the
shard-size weighting of gradients. With mpi4py and mpiexec (CI installs them: MINICNN_REQUIRE_MPI=1 turns their
absence into a failure), ``mpiexec -n 2`` runs of tests/mpi_worker.py and of ``python -m minicnn.train``, each rank
with one Numba thread, every run under a subprocess timeout so that a hang fails instead of blocking.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from minicnn.distributed import FlatBuffer, launched_by_mpi, shard_bounds
from minicnn.layers import Dropout

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mpi_worker  # noqa: E402


# --- without MPI --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,size", [(128, 2), (5, 2), (7, 3), (2, 4), (0, 2), (130, 4)])
def test_shards_cover_the_batch_once_in_order_with_sizes_differing_by_at_most_one(n, size):
    bounds = [shard_bounds(n, size, r) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no gap, no overlap
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_shard_rank_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="rank must be in"):
        shard_bounds(10, 2, 2)


def test_flat_buffer_packs_scaled_arrays_end_to_end_and_unpacks_them_in_place():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (4,), (2, 2, 2), ()]]
    buf = FlatBuffer(np, [a.shape for a in arrays], np.float32, extra=2)
    assert buf.data.shape == (12 + 4 + 8 + 1 + 2,) and buf.matches(arrays, np.float32)
    buf.pack(arrays, extras=(5.0, 6.0), scale=0.5)
    expected = np.concatenate([a.ravel() for a in arrays] + [np.array([5.0, 6.0], np.float32)]) * np.float32(0.5)
    np.testing.assert_array_equal(buf.data, expected)
    targets = [np.zeros_like(a) for a in arrays]
    buf.unpack(targets)
    for t, a in zip(targets, arrays):
        np.testing.assert_array_equal(t, a * np.float32(0.5))
    np.testing.assert_array_equal(buf.extras, [2.5, 3.0])
    assert not buf.matches(arrays[:2], np.float32) and not buf.matches(arrays, np.float64)


@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, False),
        ({"PMI_SIZE": "2"}, True),
        ({"PMI_SIZE": "1"}, False),
        ({"OMPI_COMM_WORLD_SIZE": "4"}, True),
        ({"SLURM_NTASKS": "8"}, False),
        ({"PMIX_RANK": "0", "SLURM_STEP_NUM_TASKS": "8"}, True),
        ({"PMIX_RANK": "0", "SLURM_STEP_NUM_TASKS": "1"}, False),
        ({"PMIX_RANK": "3"}, True),
    ],
)
def test_an_mpi_launch_is_recognised_from_the_environment(env, expected):
    assert launched_by_mpi(env) is expected


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_dropout_shards_draw_the_masks_one_process_draws_for_the_global_batch(backend):
    from minicnn.backend import get_backend

    def layer():  # every rank's layer: the same stream
        d = Dropout(0.5, seed=11)
        d.build((4, 3), get_backend(backend), "float32", np.random.default_rng(0))
        return d

    x = np.ones((7, 4, 3), dtype=np.float32)
    expected = layer().forward(x, training=True).copy()
    for lo, hi in [shard_bounds(7, 2, r) for r in range(2)]:
        part = layer()
        part.batch_slice = (lo, hi, 7)
        np.testing.assert_array_equal(part.forward(x[lo:hi], training=True), expected[lo:hi])


def test_shard_gradients_weighted_by_shard_size_sum_to_the_global_batch_gradient(tutorial_model):
    """The rule the allreduce applies: g = sum_r (n_r / B) g_r, exact in real numbers (float64: 1e-12)."""
    x, y = mpi_worker.data()
    x, y = x[:5].astype(np.float64), y[:5].astype(np.float64)
    model = tutorial_model(seed=2, dtype="float64", dropout=(0.0, 0.0))
    _, whole = model.compute_gradients(x, y)
    summed = [np.zeros_like(g) for g in whole]
    for lo, hi in [shard_bounds(5, 2, r) for r in range(2)]:  # 3 + 2 samples: unequal shards
        _, part = model.compute_gradients(x[lo:hi], y[lo:hi])
        for s, g in zip(summed, part):
            s += g * ((hi - lo) / 5)
    for s, g in zip(summed, whole):
        np.testing.assert_allclose(s, g, rtol=1e-12, atol=1e-12 * np.abs(g).max())


# --- under mpiexec -n 2 ----------------------------------------------------------------------------------
def _mpi_or_skip():
    missing = []
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        missing.append("mpi4py")
    if shutil.which("mpiexec") is None:
        missing.append("mpiexec")
    if missing:
        if os.environ.get("MINICNN_REQUIRE_MPI") == "1":
            pytest.fail(f"MINICNN_REQUIRE_MPI=1 but {', '.join(missing)} missing: pip install '.[distributed]'")
        pytest.skip(f"{', '.join(missing)} not installed (pip install '.[distributed]')")


def _mpiexec(args, timeout=300):
    """``mpiexec -n 2 python ARGS`` (one Numba thread per rank: 2 ranks on CI's 2 cores)."""
    _mpi_or_skip()
    env = {
        **os.environ,
        "NUMBA_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _assert_same_weights(one, two, rtol):
    """Every tensor of ``two`` within ``rtol * max|tensor|`` of ``one``'s (max-norm relative error)."""
    for name, w in one.named_weights():
        err = np.abs(two[name] - w).max() / np.abs(w).max()
        assert err <= rtol, f"{name}: relative difference {err:.3g} > {rtol}"


def test_a_one_rank_strategy_trains_bit_for_bit_what_fit_alone_trains():
    """MPI as a world of one (no mpiexec): weights x 1.0 through the flat buffer and a one-rank allreduce are exact."""
    _mpi_or_skip()
    from minicnn.distributed import get_strategy

    alone, _ = mpi_worker.train(epochs=1)
    strategy = get_strategy(force=True)
    assert strategy.size == 1 and strategy.is_root
    ranked, _ = mpi_worker.train(strategy=strategy, epochs=1)
    for (name, a), (_, b) in zip(alone.named_weights(), ranked.named_weights()):
        assert np.array_equal(a, b), name


def test_two_ranks_train_the_weights_one_process_trains_on_the_same_global_batch(tmp_path):
    """2 epochs of 4 steps, the last of each epoch unequal (3 + 2 samples; in a third run 1 + 0: rank 1 has none),
    dropout on, validation shards of 11 + 10. float32: the allreduce sums in another order, and the differences
    Adadelta carries for 8 steps stay within 1e-5 of each tensor's largest weight (measured: about 2e-6); float64:
    1e-12 (measured: about 3e-15). The history (loss, val_loss ...) too."""
    proc = _mpiexec([os.path.join(HERE, "mpi_worker.py"), "fit", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, dtype, samples, rtol in (
        ("float32", "float32", mpi_worker.SAMPLES, 1e-5),
        ("float64", "float64", mpi_worker.SAMPLES, 1e-12),
        ("empty_shard", "float32", 214, 1e-5),
    ):
        model, history = mpi_worker.train(dtype, samples=samples)
        with np.load(tmp_path / f"{name}.npz") as two:
            _assert_same_weights(model, two, rtol)
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                np.testing.assert_allclose(two[f"history/{key}"], history.history[key], rtol=10 * rtol, atol=1e-6)


def test_resuming_under_mpi_continues_to_the_weights_of_an_uninterrupted_run(tmp_path):
    proc = _mpiexec([os.path.join(HERE, "mpi_worker.py"), "resume", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.load(tmp_path / "epochs_run.npy").tolist() == [1]  # it resumed: only the second epoch ran
    model, _ = mpi_worker.train("float32", epochs=2)
    with np.load(tmp_path / "resumed.npz") as two:
        _assert_same_weights(model, two, 1e-5)


@pytest.mark.parametrize(
    "mode,says", [("fail", "rank 1 of 2: error: RuntimeError: bad data on purpose"), ("kill", "signal 9")]
)
def test_a_failing_rank_ends_the_whole_job_promptly_saying_which_and_why(tmp_path, mode, says):
    """Rank 1 raises (or is killed) in its third step of a 50-epoch run; rank 0 would wait in the next allreduce
    forever without the abort. 120 s of timeout is generous: the job ends seconds after the fault."""
    proc = _mpiexec([os.path.join(HERE, "mpi_worker.py"), mode, str(tmp_path)], timeout=120)
    assert proc.returncode != 0
    assert says in proc.stdout + proc.stderr


def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """Rank 1's weights turn infinite after step 3: its shard's loss is NaN, so is the global one that the allreduce
    gives every rank; all stop before step 4's update (a rank left training would wait forever)."""
    proc = _mpiexec([os.path.join(HERE, "mpi_worker.py"), "nan", str(tmp_path)], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stopped = json.loads((tmp_path / "stopped.json").read_text())
    assert stopped["reason"] == "nan" and (stopped["epoch"], stopped["step"]) == (1, 4), stopped


def test_the_command_under_mpiexec_prints_and_writes_once(tmp_path):
    from test_datasets import _real_mnist_dir

    data = _real_mnist_dir()
    out = tmp_path / "run"
    proc = _mpiexec(
        [
            "-m",
            "minicnn.train",
            "--epochs",
            "1",
            "--limit",
            "512",
            "--batch-size",
            "64",
            "--quiet",
            "--data-dir",
            data,
            "--out",
            str(out),
            "--checkpoint-dir",
            str(tmp_path / "ck"),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Total params: 186,110") == 1 and proc.stdout.count("wrote ") == 1
    assert proc.stdout.count("Epoch 1/1") == 1 and "test accuracy" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["history.png", "metrics.json", "misclassified.png", "weights.npz"]
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["checkpoint.npz"]


def test_a_global_batch_that_does_not_split_evenly_is_a_clear_error(tmp_path):
    from test_datasets import _real_mnist_dir

    proc = _mpiexec(
        [
            "-m",
            "minicnn.train",
            "--epochs",
            "1",
            "--limit",
            "256",
            "--batch-size",
            "65",
            "--data-dir",
            _real_mnist_dir(),
            "--out",
            str(tmp_path),
        ],
        timeout=120,
    )
    assert proc.returncode != 0
    assert "--batch-size 65 is the global batch and must divide evenly across 2 ranks" in proc.stderr


def test_the_scaling_benchmark_runs_one_and_two_ranks_and_writes_its_report(tmp_path):
    _mpi_or_skip()
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.distributed",
            "--ranks",
            "1,2",
            "--threads",
            "1",
            "--steps",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=os.path.dirname(HERE),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| 2 x 1 |" in proc.stdout
    rows = {r["ranks"]: r for r in json.loads((tmp_path / "distributed.json").read_text())["rows"]}
    assert rows[1]["efficiency"] == 1.0 and rows[1]["allreduce_share"] == 0.0
    assert 0 < rows[2]["allreduce_share"] < 1 and rows[2]["allreduce_bytes"] == 4 * (186_110 + 2)
    assert (tmp_path / "distributed.png").stat().st_size > 1000


def test_the_python_example_of_docs_distributed_runs_under_mpiexec(tmp_path):
    import re

    with open(os.path.join(os.path.dirname(HERE), "docs", "distributed.md")) as fh:
        block = next(b for b in re.findall(r"```python\n(.*?)```", fh.read(), flags=re.S) if "get_strategy" in b)
    (tmp_path / "train_mpi.py").write_text(block)
    _mpi_or_skip()
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": os.path.dirname(HERE)}
    proc = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, "train_mpi.py"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [line for line in proc.stdout.splitlines() if line.startswith("val_accuracy ")]
    assert len(printed) == 1 and (tmp_path / "weights.npz").is_file()
