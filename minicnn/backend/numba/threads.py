"""Threads of the Numba backend: one pool, Numba's.

Every matrix product runs inside a Numba parallel loop, split by rows between Numba's threads, and each thread calls
BLAS (SciPy's, which ``np.dot`` uses inside Numba) with BLAS held to one thread for the call: BLAS's own threads
kept spinning after each product while Numba's threads needed the same cores (see docs/performance.md,
"One pool of threads"). With BLAS out of the way, the OpenMP threading layer is the default (unless
``NUMBA_THREADING_LAYER`` or ``NUMBA_THREADING_LAYER_PRIORITY`` is set), because it starts a parallel loop far
faster than ``workqueue`` (same section). GNU OpenMP does not survive ``fork()``: start worker processes with
``spawn``.

On a busy machine (another process on the cores) OpenMP's default wait, threads spinning for a while at every
barrier, steals the time a descheduled thread needs, and a step ran 7x slower than on a quiet machine.
:func:`start_pool` therefore starts Numba's threads with a bounded wait (:data:`WAIT_POLICY`, unless the user set
one of its variables) and with :func:`~minicnn.backend.cores.available_cores` threads (see docs/performance.md,
"Busy machines").

Waking a sleeping thread costs about 80-100 us on the 2-core VM (a futex wake and a halted virtual CPU), more than
small kernels take whole: :func:`one_thread_when_small` runs those on the calling thread alone while the pool sleeps
between parallel loops (see docs/performance.md, "Small kernels on one thread").
"""

from __future__ import annotations

import os
import threading
from contextlib import nullcontext

import numba
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that np.dot inside Numba calls; imported before threadpoolctl looks)
from threadpoolctl import ThreadpoolController

from ..cores import available_cores

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


# How OpenMP's threads wait between parallel loops, set while Numba starts its pool (the runtime reads them once,
# when it loads) unless the user set any of them: GNU OpenMP and LLVM/Intel OpenMP both honour OMP_WAIT_POLICY.
WAIT_POLICY = {"OMP_WAIT_POLICY": "passive"}
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
OPENMP_LIBRARIES = ("libgomp", "libomp", "libiomp")

_pool = {}  # what start_pool() found and chose: filled once, read by pool_info()


def openmp_loaded() -> list[str]:
    """The OpenMP runtimes already mapped into this process (Linux; empty elsewhere): a runtime reads its wait
    policy when it loads, so one loaded before Numba's pool starts keeps the settings it found."""
    try:
        with open("/proc/self/maps") as fh:
            names = {line.rsplit("/", 1)[-1].strip() for line in fh if "/lib" in line}
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(OPENMP_LIBRARIES))


def start_pool() -> dict:
    """Start Numba's threads (once): the bounded wait of :data:`WAIT_POLICY` in the environment only while the
    threading layer loads (a user's own OMP_WAIT_POLICY / GOMP_SPINCOUNT / KMP_BLOCKTIME wins), and
    :func:`available_cores` threads when the affinity mask allows more than the cgroup quota. Returns
    :func:`pool_info`."""
    if _pool:
        return pool_info()
    user = {k: os.environ[k] for k in WAIT_VARIABLES if k in os.environ}
    preloaded = openmp_loaded()
    chosen = {} if user else dict(WAIT_POLICY)
    saved = {k: os.environ.get(k) for k in chosen}
    os.environ.update(chosen)
    try:
        numba.get_num_threads()  # loads the threading layer and starts its threads
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    layer = numba.threading_layer()
    if layer != "omp":
        wait = f"{layer} layer's own"
    elif user:
        wait = "the user's: " + ", ".join(f"{k}={v}" for k, v in user.items())
    elif preloaded:
        wait = f"OpenMP's default ({', '.join(preloaded)} was loaded before Numba's threads started)"
    else:
        wait = ", ".join(f"{k}={v}" for k, v in chosen.items())
    sleeps = layer != "omp" or not (user or preloaded) or _waits_passively(user)
    _pool.update(layer=layer, wait=wait, pool=numba.config.NUMBA_NUM_THREADS, cores=available_cores(), sleeps=sleeps)
    if numba.get_num_threads() > _pool["cores"]:
        numba.set_num_threads(_pool["cores"])
    return pool_info()


def _waits_passively(user: dict) -> bool:
    # The user's own wait settings that put threads to sleep at once (no spinning between parallel loops).
    return (
        user.get("OMP_WAIT_POLICY", "").strip().lower() == "passive"
        or user.get("GOMP_SPINCOUNT", "").strip() == "0"
        or user.get("KMP_BLOCKTIME", "").strip() == "0"
    )


# A kernel that would take less than this on one thread runs on one thread while Numba's threads sleep between
# parallel loops: waking them costs more than they save (docs/performance.md, "Small kernels on one thread").
SERIAL_BELOW_SECONDS = 200e-6


class _OneThread:
    """``with`` it, Numba's kernels called from this Python thread run on it alone; the count is restored after."""

    def __enter__(self):
        self._before = numba.get_num_threads()
        numba.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        numba.set_num_threads(self._before)
        return False


_PARALLEL = nullcontext()


def one_thread_when_small(seconds: float):
    """A context for one kernel call whose work would take ``seconds`` on one thread: one thread when that is under
    :data:`SERIAL_BELOW_SECONDS` and the pool's threads sleep between loops (the passive wait, or a layer without
    spinning), else nothing changes. Only for kernels whose results do not depend on the threads that run them
    (a kernel that splits its work by ``numba.get_num_threads()`` must read that count before entering)."""
    if not _pool:
        start_pool()
    if seconds >= SERIAL_BELOW_SECONDS or not _pool["sleeps"] or numba.get_num_threads() == 1:
        return _PARALLEL
    return _OneThread()


def set_threads(n: int) -> None:
    """Numba's kernels use ``n`` threads from now on (in this Python thread: Numba's count is per thread)."""
    start_pool()
    if n > _pool["pool"]:
        raise ValueError(
            f"set_num_threads({n}): Numba started {_pool['pool']} threads (NUMBA_NUM_THREADS, by "
            f"default the cores this process may run on); set NUMBA_NUM_THREADS={n} before starting "
            f"Python for more"
        )
    numba.set_num_threads(n)


def get_threads() -> int:
    """The threads Numba's kernels use in this Python thread (starting the pool first, as :func:`start_pool`)."""
    start_pool()
    return numba.get_num_threads()


def pool_info() -> dict:
    """``{"layer", "wait", "sleeps", "pool", "cores", "threads"}``: Numba's threading layer, how its threads wait
    (``sleeps``: they sleep between parallel loops, see :func:`one_thread_when_small`), how many it started, the
    cores available to this process and the threads its kernels use now (in this Python thread)."""
    return {**_pool, "threads": numba.get_num_threads()} if _pool else start_pool()
