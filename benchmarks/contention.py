"""A busy machine on demand: K processes that each keep one core busy, for benchmarks that measure how a framework
behaves when it is not alone (``benchmarks.train --contention K``, ``benchmarks.sweep --contention K``).

Each busy process is a pure-Python spin loop (``while True: pass``): it holds one core without touching memory
much, like a compiler or a notebook in another window. They are killed when the ``with`` block ends, and also
when the benchmark dies (each one exits when its parent does).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

# Spin, and exit when the parent is gone (its pipe closes): a crashed benchmark leaves no process behind.
SPIN = (
    "import os, sys, threading\n"
    "threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n"
    "while True:\n    pass\n"
)


@contextlib.contextmanager
def busy_processes(k: int):
    """``with busy_processes(k) as pids:`` runs ``k`` spinning processes for the block's duration."""
    if k < 0:
        raise ValueError(f"busy_processes: k must be >= 0, got {k}")
    procs = []
    try:
        for _ in range(k):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", SPIN],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
            if p.stdin is not None:
                p.stdin.close()


def blas_libraries() -> list[dict]:
    """The BLAS libraries loaded in this process as threadpoolctl sees them, after importing NumPy and SciPy's
    BLAS (the Numba kernels' ``np.dot`` calls SciPy's OpenBLAS, not NumPy's): prefix, version, architecture,
    threads, file, and which side uses it."""
    import numpy  # noqa: F401

    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    found = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        path = lib.get("filepath", "")
        folder = os.path.basename(os.path.dirname(path))  # scipy.libs/, numpy.libs/ for wheels
        user = (
            "scipy (the Numba kernels)"
            if folder.startswith("scipy")
            else "numpy (the NumPy backend)"
            if folder.startswith("numpy")
            else "numpy and scipy (a system BLAS)"
        )
        found.append(
            {
                "prefix": lib.get("prefix"),
                "version": lib.get("version"),
                "architecture": lib.get("architecture"),
                "threading_layer": lib.get("threading_layer"),
                "threads": lib.get("num_threads"),
                "file": path.rsplit("/", 1)[-1],
                "used_by": user,
            }
        )
    return found


def blas_line(libraries) -> str:
    """One line for a report: ``numpy: scipy_openblas 0.3.31 Haswell, 2 threads; scipy: ...``."""
    return (
        "; ".join(
            f"{lib['used_by'].split()[0]}: {lib['prefix']} {lib['version']} {lib['architecture'] or ''}, "
            f"{lib['threads']} threads"
            for lib in libraries
        )
        or "unknown"
    )
