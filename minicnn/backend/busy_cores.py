"""How many of this process's cores other processes keep busy, measured as training goes.

Linux counts in ``/proc/stat`` the time each core spent busy; this process's own share is its CPU time
(``os.times``). Over the last half second or so, (busy time of this process's cores - its own CPU time) / elapsed
time is the number of cores that other processes took. On a shared machine the Numba backend then runs its parallel
kernels with fewer threads (see :func:`minicnn.backend.numba.threads.kernel_threads` and docs/performance.md,
"Busy machines"). Elsewhere (no ``/proc/stat``) nothing is known and nothing changes.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["BUSY_COLUMNS", "BUSY_COLUMNS_WITHOUT_NICE", "BusyCores", "busy_seconds"]

# /proc/stat columns after the name: user nice system idle iowait irq softirq steal guest guest_nice. Busy: all
# but idle and iowait (guest time is already inside user); steal is time the hypervisor gave to another machine.
BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)
# Without nice: niced processes (nice 19 takes ~1.5% of a core against one at nice 0) yield to a process that is not
# niced itself, so their time is not a core taken from it.
BUSY_COLUMNS_WITHOUT_NICE = (0, 2, 5, 6, 7)


def busy_seconds(stat_text: str, cpus, columns=BUSY_COLUMNS) -> float | None:
    """Seconds the cores ``cpus`` (numbers, as in ``os.sched_getaffinity``) have been busy since boot, from the text
    of ``/proc/stat`` (the time of its ``columns``); None when a core is missing from it or a line is malformed."""
    ticks, wanted, total, seen = os.sysconf("SC_CLK_TCK"), set(cpus), 0, 0
    try:
        for line in stat_text.splitlines():
            name, _, rest = line.partition(" ")
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in wanted:
                fields = rest.split()
                total += sum(int(fields[i]) for i in columns if i < len(fields))
                seen += 1
    except ValueError:
        return None
    return total / ticks if seen == len(wanted) else None


def _read_proc_stat() -> str | None:
    try:
        with open("/proc/stat") as fh:
            return fh.read()
    except OSError:
        return None


def _niceness() -> int:
    try:
        return os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError):
        return 0


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class BusyCores:
    """The cores of ``cpus`` that other processes kept busy over the last :attr:`interval` seconds or more.

    :meth:`others` is cheap (a clock read) between samples; a sample reads ``/proc/stat`` (tens of microseconds).
    ``read_stat``, ``own_seconds`` and ``clock`` are there for tests."""

    interval = 0.5  # seconds between samples: ~100 clock ticks of 2 cores, a few percent of resolution

    def __init__(self, cpus, read_stat=_read_proc_stat, own_seconds=_own_cpu_seconds, clock=time.monotonic):
        self.cpus = frozenset(cpus)
        self._read_stat, self._own_seconds, self._clock = read_stat, own_seconds, clock
        self._columns = BUSY_COLUMNS_WITHOUT_NICE if _niceness() <= 0 else BUSY_COLUMNS
        self._busy = 0.0
        self._sampling = threading.Lock()  # kernels may be called from several Python threads: one samples
        self._pid = os.getpid()
        self._last = self._sample()

    def _sample(self):
        text = self._read_stat()
        busy = None if text is None else busy_seconds(text, self.cpus, self._columns)
        return self._clock(), busy, self._own_seconds()

    @property
    def readable(self) -> bool:
        """Whether ``/proc/stat`` gave the busy time of every core in ``cpus`` (else :meth:`others` stays 0)."""
        return self._last[1] is not None

    def others(self) -> float:
        """Cores taken by other processes since the previous sample, at least :attr:`interval` seconds ago (0.0
        until one has passed, or when ``/proc/stat`` cannot tell)."""
        last = self._last
        if self._clock() - last[0] < self.interval or not self._sampling.acquire(blocking=False):
            return self._busy
        try:
            if os.getpid() != self._pid:  # a forked child: its CPU time restarted at 0, the parent's sample is not its
                self._pid, self._busy, self._last = os.getpid(), 0.0, self._sample()
                return self._busy
            now = self._sample()
            if now[1] is None or last[1] is None or now[0] <= last[0]:
                self._busy = 0.0  # nothing known: change nothing
            else:
                self._busy = max(0.0, (now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0])
            self._last = now
            return self._busy
        finally:
            self._sampling.release()

    def free_cores(self) -> int:
        """The cores of ``cpus`` left to this process: all of them less those others took, rounded half up, at
        least 1."""
        return max(1, int(len(self.cpus) - self.others() + 0.5))
