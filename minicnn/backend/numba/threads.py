"""Threads of the Numba backend: one pool, Numba's.

Every matrix product runs inside a Numba parallel loop, split by rows between Numba's threads, and each thread calls
BLAS (SciPy's, which ``np.dot`` uses inside Numba) with BLAS held to one thread for the call: BLAS's own threads
kept spinning after each product while Numba's threads needed the same cores (see docs/performance.md,
"One pool of threads"). With BLAS out of the way, the OpenMP threading layer is the default (unless
``NUMBA_THREADING_LAYER`` or ``NUMBA_THREADING_LAYER_PRIORITY`` is set), because it starts a parallel loop far
faster than ``workqueue`` (same section). GNU OpenMP does not survive ``fork()``: start worker processes with
``spawn``.
"""

from __future__ import annotations

import os
import threading

import numba
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that np.dot inside Numba calls; imported before threadpoolctl looks)
from threadpoolctl import ThreadpoolController

if "NUMBA_THREADING_LAYER" not in os.environ and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]


class OneBlasThread:
    """``with`` it, every BLAS library loaded in the process runs single-threaded; when the last user leaves (kernels
    may run from several Python threads at once), each library gets back the thread count it had. threadpoolctl
    finds the libraries once here: its own ``limit()`` context rescans them at every use, which costs a step
    noticeably (see docs/performance.md, "One pool of threads")."""

    def __init__(self):
        self._libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        self._saved = []
        self._users = 0
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            if self._users == 0:
                self._saved = [lib.get_num_threads() for lib in self._libraries]
                for lib in self._libraries:
                    lib.set_num_threads(1)
            self._users += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for lib, threads in zip(self._libraries, self._saved):
                    lib.set_num_threads(threads)
        return False
