"""The GPU side of minicnn.distributed that one GPU can check, for benchmarks/gpu_check.py (one process, no
mpiexec: mpi4py then runs as a world of one rank):

- a one-rank NCCL communicator (``cupy.cuda.nccl``) summing a flat buffer of the tutorial's 186,110 gradients in
  place (a sum over one rank must leave it unchanged), and its time per call;
- the MPI path with GPU buffers (device -> pinned host -> MPI_Allreduce -> device; CUDA-aware when
  ``MINICNN_MPI_CUDA_AWARE=1``), unchanged too, and its time;
- ``fit(distributed=MPIStrategy)`` on the CuPy backend for a few steps: the same weights as ``fit`` alone.

Each part reports ``info`` with ``skipped: ...`` when what it needs (mpi4py, NCCL) is not installed.
"""

from __future__ import annotations

import os
import time

import numpy as np

TUTORIAL_GRADIENTS = 186_110


def _timed(fn, repeat=50):
    import cupy

    fn()
    cupy.cuda.get_current_stream().synchronize()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    cupy.cuda.get_current_stream().synchronize()
    return (time.perf_counter() - started) / repeat


def _allreduce_unchanged(record, name, allreduce):
    import cupy

    data = cupy.random.default_rng(0).random(TUTORIAL_GRADIENTS, dtype=cupy.float32)
    before = data.copy()
    allreduce(data)
    same = bool(cupy.array_equal(data, before))
    seconds = _timed(lambda: allreduce(data))
    mib_s = data.nbytes / seconds / 2**20
    record(
        name,
        "PASS" if same else "FAIL",
        f"one-rank sum of {TUTORIAL_GRADIENTS:,} float32 {'unchanged' if same else 'CHANGED'}; "
        f"{seconds * 1e6:.0f} us a call ({mib_s:.0f} MiB/s)",
        seconds=seconds,
    )


def distributed_checks(record) -> None:
    """Run the three checks, each reported through ``record(check, result, detail, **extra)``."""
    try:
        from mpi4py import MPI
    except ImportError:
        record("distributed (MPI, NCCL)", "info", "skipped: no mpi4py (pip install '.[distributed]')")
        return
    from minicnn.distributed.reducers import MPIAllreduce, NCCLAllreduce, nccl_available

    comm = MPI.COMM_WORLD
    if nccl_available():
        _allreduce_unchanged(record, "NCCL allreduce (1 rank)", NCCLAllreduce(comm))
    else:
        record("NCCL allreduce (1 rank)", "info", "skipped: no nccl (CuPy without cupy.cuda.nccl)")
    cuda_aware = os.environ.get("MINICNN_MPI_CUDA_AWARE") == "1"
    reducer = MPIAllreduce(comm, on_gpu=True, cuda_aware=cuda_aware)
    _allreduce_unchanged(record, f"MPI allreduce of GPU buffers ({reducer.name})", reducer)
    _fit_matches(record)


def _fit_matches(record) -> None:
    from minicnn.backend import get_backend
    from minicnn.distributed import get_strategy
    from minicnn.train import tutorial_model

    rng = np.random.default_rng(0)
    x = rng.random((300, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 300)]
    strategy = get_strategy(get_backend("cupy"), force=True)
    weights = []
    for distributed in (None, strategy):
        model = tutorial_model(seed=5, backend="cupy")
        model.fit(x, y, batch_size=64, epochs=1, verbose=0, validation_split=0.1, distributed=distributed)
        weights.append(dict(model.named_weights()))
    worst = max(float(np.abs(weights[0][k] - weights[1][k]).max()) for k in weights[0])
    record(
        "fit with MPIStrategy on the GPU (1 rank)",
        "PASS" if worst <= 1e-6 else "FAIL",
        f"{strategy.allreduce.name}: 5 steps, largest weight difference from fit alone {worst:.2g} (<= 1e-6)",
    )
