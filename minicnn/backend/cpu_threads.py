"""The CPU thread count of the backends: ``mc.set_num_threads(n)``, ``mc.get_num_threads()``.

The Numba backend starts with :func:`~minicnn.backend.cores.available_cores` threads; the same count gives the same
results bit for bit, another count adds the per-thread partial sums in other groups.
"""

from __future__ import annotations

__all__ = ["set_num_threads", "get_num_threads"]


def _numba_threads():
    try:
        from .numba import threads
    except ImportError:
        return None
    return threads


def set_num_threads(n: int) -> None:
    """Use ``n`` CPU threads: the Numba backend's parallel kernels (in the calling Python thread, as Numba's own
    ``set_num_threads``) and BLAS's threads (which the NumPy backend's products use).

    Results are reproducible bit for bit for a fixed thread count: the Numba kernels add per-thread partial sums,
    whose grouping follows the count. ``n`` may not exceed the threads Numba started (``NUMBA_NUM_THREADS``,
    by default the cores in this process's affinity mask)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {n!r}")
    threads = _numba_threads()
    if threads is not None:
        threads.set_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=n, user_api="blas")


def get_num_threads() -> int:
    """The CPU threads the Numba backend's kernels use in this Python thread (without Numba: BLAS's)."""
    threads = _numba_threads()
    if threads is not None:
        return threads.get_threads()
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 1
    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)
