"""How many of this process's cores other processes keep busy, measured as training goes.

Linux counts in ``/proc/stat`` the time each core spent busy; this process's own share is its CPU time
(``os.times``). Over the last half second or so, (busy time of this process's cores - its own CPU time) / elapsed
time is the number of cores that other processes took. On a shared machine the Numba backend then runs its parallel
kernels with fewer threads (see :func:`minicnn.backend.numba.threads.kernel_threads` and docs/performance.md,
"Busy machines"). Elsewhere (no ``/proc/stat``) nothing is known and nothing changes.
"""

from __future__ import annotations

import os
import time

__all__ = ["BusyCores", "busy_seconds"]

# /proc/stat columns after the name: user nice system idle iowait irq softirq steal guest guest_nice. Busy: all
# but idle and iowait (guest time is already inside user); steal is time the hypervisor gave to another machine.
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


def busy_seconds(stat_text: str, cpus) -> float | None:
    """Seconds the cores ``cpus`` (numbers, as in ``os.sched_getaffinity``) have been busy since boot, from the text
    of ``/proc/stat``; None when a core is missing from it."""
    ticks, wanted, total, seen = os.sysconf("SC_CLK_TCK"), set(cpus), 0, 0
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in wanted:
            fields = rest.split()
            total += sum(int(fields[i]) for i in _BUSY_COLUMNS if i < len(fields))
            seen += 1
    return total / ticks if seen == len(wanted) else None


def _read_proc_stat() -> str | None:
    try:
        with open("/proc/stat") as fh:
            return fh.read()
    except OSError:
        return None


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
        self._busy = 0.0
        self._last = self._sample()

    def _sample(self):
        text = self._read_stat()
        return self._clock(), None if text is None else busy_seconds(text, self.cpus), self._own_seconds()

    @property
    def readable(self) -> bool:
        """Whether ``/proc/stat`` gave the busy time of every core in ``cpus`` (else :meth:`others` stays 0)."""
        return self._last[1] is not None

    def others(self) -> float:
        """Cores taken by other processes in the last complete interval (0.0 until one has passed, or when
        ``/proc/stat`` cannot tell)."""
        if self._clock() - self._last[0] < self.interval:
            return self._busy
        now = self._sample()
        if now[1] is not None and self._last[1] is not None:
            elapsed = now[0] - self._last[0]
            self._busy = max(0.0, (now[1] - self._last[1]) - (now[2] - self._last[2])) / elapsed
        self._last = now
        return self._busy

    def free_cores(self) -> int:
        """The cores of ``cpus`` left to this process: all of them less those others took, rounded, at least 1."""
        return max(1, round(len(self.cpus) - self.others()))
