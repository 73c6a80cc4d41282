"""How many CPU cores this process may really use, and the CPU thread count of the backends.

``os.cpu_count()`` counts the machine's cores; a process may be allowed fewer: its affinity mask
(``taskset``, ``docker --cpuset-cpus``) and its control group's CPU quota (``docker --cpus``, Kubernetes limits,
cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``). Threads beyond those cores only wait for one another, so the
Numba backend starts with :func:`available_cores` threads (:mod:`.cpu_threads` changes the count).
"""

from __future__ import annotations

import math
import os

__all__ = ["available_cores", "cgroup_cpu_limit"]


def _read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _cgroup_dirs(root, proc_cgroup, controller_v1):
    """The folders of this process's cgroup and its ancestors, innermost first: the v2 (unified) hierarchy and the
    v1 hierarchy of ``controller_v1``, as ``(version, folder)``."""
    text = _read(proc_cgroup) or ""
    found = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            base, version = root, 2
            if not os.path.exists(os.path.join(root, "cgroup.controllers")):
                base = os.path.join(root, "unified")
        elif controller_v1 in controllers.split(","):
            base, version = os.path.join(root, controllers), 1
            if not os.path.isdir(base):
                base = os.path.join(root, controller_v1)
        else:
            continue
        rel = path.strip("/")
        while True:
            found.append((version, os.path.join(base, rel) if rel else base))
            if not rel:
                break
            rel = os.path.dirname(rel)
    return found


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """The CPU quota of this process's control group in cores (``quota / period``; the smallest along the
    hierarchy), or None when there is none (or no cgroup file system to read)."""
    limits = []
    for version, folder in _cgroup_dirs(root, proc_cgroup, "cpu"):
        if version == 2:
            text = _read(os.path.join(folder, "cpu.max"))
            fields = text.split() if text else []
            if len(fields) == 2 and fields[0] != "max":
                limits.append(int(fields[0]) / int(fields[1]))
        else:
            quota, period = (
                _read(os.path.join(folder, "cpu.cfs_quota_us")),
                _read(os.path.join(folder, "cpu.cfs_period_us")),
            )
            if quota and period and int(quota) > 0 and int(period) > 0:
                limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def available_cores() -> int:
    """The cores this process may use: its affinity mask, capped by its cgroup CPU quota rounded up (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)
