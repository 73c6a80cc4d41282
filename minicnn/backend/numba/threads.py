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

Each kernel call goes through :func:`kernel_threads`, which may run it on fewer threads than the count set (the
count that fixes how the work is split, and so the bits, stays the same):

- waking a sleeping thread costs about 80-100 us on the 2-core VM (a futex wake and a halted virtual CPU), more than
  small kernels take whole: those run on the calling thread alone while the pool sleeps between parallel loops
  (docs/performance.md, "Small kernels on one thread");
- when other processes keep some of this process's cores busy (:class:`~minicnn.backend.busy_cores.BusyCores`),
  kernels run on the cores left: a thread waiting for a descheduled one at every barrier made a step slower than
  one thread alone (docs/performance.md, "Busy machines"). ``MINICNN_ADAPT_THREADS=0`` turns this off.
"""

from __future__ import annotations

import os
import threading
from contextlib import nullcontext

import numba
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that np.dot inside Numba calls; imported before threadpoolctl looks)
from threadpoolctl import ThreadpoolController

from ..busy_cores import BusyCores
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
_watch = []  # the BusyCores watching this process's cores, when start_pool() found it can (at most one)


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
    cores = available_cores()
    watch = _busy_watch(cores)
    _watch[:] = [watch] if watch is not None else []
    _pool.update(
        layer=layer, wait=wait, pool=numba.config.NUMBA_NUM_THREADS, cores=cores, sleeps=sleeps, adapts=bool(_watch)
    )
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


def _busy_watch(cores: int):
    # A BusyCores over this process's cores, or None: turned off by MINICNN_ADAPT_THREADS=0, or nothing to watch
    # (no affinity mask or /proc/stat), or a CPU quota below the mask (the cores' busy time then says little).
    if os.environ.get("MINICNN_ADAPT_THREADS", "1").strip() == "0" or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2 or cores < len(cpus):
        return None
    watch = BusyCores(cpus)
    return watch if watch.readable else None


# A kernel that would take less than this on one thread runs on one thread while Numba's threads sleep between
# parallel loops: waking them costs more than they save (docs/performance.md, "Small kernels on one thread").
SERIAL_BELOW_SECONDS = 200e-6


class _FewerThreads:
    """``with`` it, Numba's kernels called from this Python thread run on ``n`` threads; the count is restored
    after."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self._before = numba.get_num_threads()
        numba.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        numba.set_num_threads(self._before)
        return False


_SAME = nullcontext()


def kernel_threads(seconds: float):
    """A context for one kernel call whose work would take ``seconds`` on one thread. It runs the call on:

    - one thread, when ``seconds`` is under :data:`SERIAL_BELOW_SECONDS` and the pool's threads sleep between loops
      (the passive wait, or a layer without spinning);
    - else the cores other processes leave free, when they keep some busy (:class:`BusyCores`);
    - else the threads set (nothing changes).

    Only for kernels whose results do not depend on the threads that run them: a kernel that splits its work by
    ``numba.get_num_threads()`` reads that count before entering."""
    if not _pool:
        start_pool()
    threads = numba.get_num_threads()
    if threads == 1:
        return _SAME
    if seconds < SERIAL_BELOW_SECONDS and _pool["sleeps"]:
        return _FewerThreads(1)
    if _watch:
        free = _watch[0].free_cores()
        if free < threads:
            return _FewerThreads(free)
    return _SAME


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
    """``{"layer", "wait", "sleeps", "adapts", "pool", "cores", "threads"}``: Numba's threading layer, how its
    threads wait (``sleeps``: they sleep between parallel loops), whether kernels run on fewer threads when other
    processes take cores (``adapts``; see :func:`kernel_threads`), how many threads it started, the cores available
    to this process and the threads its kernels use now (in this Python thread)."""
    return {**_pool, "threads": numba.get_num_threads()} if _pool else start_pool()
