"""Data-parallel training on MPI (``pip install 'minicnn[distributed]'``: mpi4py and the ``mpich`` wheel).

From the command line, nothing changes but the launcher::

    mpiexec -n 2 python -m minicnn.train --batch-size 128        # 2 ranks, 64 samples each per step

From Python, under ``mpiexec``::

    from minicnn import distributed
    strategy = distributed.get_strategy()        # None when not launched by MPI
    model.fit(x, y, batch_size=128, distributed=strategy, verbose=1)

See :mod:`.strategy` for the semantics and docs/distributed.md for clusters, GPUs and scaling. mpi4py is imported
only when the environment shows an MPI launch (or when asked for explicitly), so a plain run never touches MPI.
"""

from __future__ import annotations

import io
import os
import sys

from .buffer import FlatBuffer, shard_bounds

# The number of processes, as MPI launchers put it in each rank's environment: MPICH's Hydra, Intel MPI and Slurm's
# srun --mpi=pmi2 (PMI_SIZE), Open MPI (OMPI_COMM_WORLD_SIZE); under PMIx (srun --mpi=pmix) PMIX_RANK says "launched"
# and Slurm's step variables give the size
LAUNCH_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")

__all__ = ["MPIStrategy", "get_strategy", "launched_by_mpi", "FlatBuffer", "shard_bounds", "run_guarded"]


def launched_by_mpi(environ=None) -> bool:
    """Whether this process looks started by an MPI launcher (mpiexec, srun) with more than one process."""
    environ = os.environ if environ is None else environ
    for name in LAUNCH_VARIABLES:
        if name in environ:
            return environ[name].strip() not in ("", "0", "1")
    if "PMIX_RANK" in environ:
        size = environ.get("SLURM_STEP_NUM_TASKS", environ.get("SLURM_NTASKS", "2")).strip()
        return size not in ("", "0", "1")
    return False


def get_strategy(backend=None, force: bool = False):
    """An :class:`~.strategy.MPIStrategy` over ``MPI.COMM_WORLD`` when launched by MPI with 2 or more ranks (or
    ``force``), else None (train in one process). ``backend``: bind it now (with CuPy, picks this rank's GPU)."""
    if not (force or launched_by_mpi()):
        return None
    try:
        from .strategy import MPIStrategy

        strategy = MPIStrategy()
    except ImportError as err:
        raise ImportError(f"launched by MPI but mpi4py is missing ({err}): pip install 'minicnn[distributed]'") from err
    if backend is not None:
        strategy.use_backend(backend)
    return strategy


def __getattr__(name):
    if name == "MPIStrategy":  # lazily: importing this package must not import mpi4py
        from .strategy import MPIStrategy

        return MPIStrategy
    raise AttributeError(name)


def run_guarded(strategy, fn, *args):
    """Run a command's ``fn(*args)`` (it returns an exit status) on this rank of a data-parallel job.

    Only rank 0 prints: the other ranks' stdout is discarded and their stderr kept aside. When ``fn`` raises or
    returns a non-zero status on any rank, that rank prints ``rank K of N: <cause>`` and ends the WHOLE job
    (``MPI_Abort``), so that no rank waits forever in an allreduce. Without a strategy: just ``fn(*args)``."""
    if strategy is None or strategy.size == 1:
        return fn(*args)
    saved, status = (sys.stdout, sys.stderr), 1
    if not strategy.is_root:
        sys.stdout, sys.stderr = open(os.devnull, "w"), io.StringIO()
    try:
        status = fn(*args)
    except KeyboardInterrupt:
        strategy.abort("interrupted", code=130)
    except BaseException as err:  # noqa: B036  (any failure, SystemExit included, must end every rank)
        if isinstance(err, SystemExit) and err.code in (0, None):
            raise
        if isinstance(err.__context__, KeyboardInterrupt):  # Ctrl-C inside a compiled kernel arrives wrapped
            strategy.abort("interrupted", code=130)
        strategy.abort(f"error: {type(err).__name__}: {err}")
    finally:
        captured = sys.stderr.getvalue() if isinstance(sys.stderr, io.StringIO) else ""
        if sys.stdout is not saved[0]:
            sys.stdout.close()
        sys.stdout, sys.stderr = saved
    if status:
        said = captured.strip().splitlines()[-1:] or ["exit status " + str(status) + " (the error above)"]
        strategy.abort(said[0], code=int(status))
    return status
