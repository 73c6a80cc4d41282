"""CPU threads: the cores a process may use (affinity, cgroup quota), Numba's pool started with a bounded wait,
``mc.set_num_threads`` / ``--threads``, and results reproducible bit for bit at a fixed thread count."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minicnn as mc
from minicnn.backend import cores

numba = pytest.importorskip("numba")


def _python(code, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        if k not in (env_extra or {}):
            env.pop(k, None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


def _fake_cgroup(tmp_path, v2_limits=None, v1_quota=None):
    """A cgroup file system under tmp_path: v2 ``cpu.max`` values along /a/b, or a v1 ``cpu`` hierarchy."""
    root = tmp_path / "cgroup"
    if v2_limits is not None:
        (root / "a" / "b").mkdir(parents=True)
        (root / "cgroup.controllers").write_text("cpu\n")
        for folder, text in zip((root, root / "a", root / "a" / "b"), v2_limits):
            if text is not None:
                (folder / "cpu.max").write_text(text + "\n")
        proc = "0::/a/b\n"
    else:
        (root / "cpu,cpuacct" / "job").mkdir(parents=True)
        (root / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us").write_text(f"{v1_quota}\n")
        (root / "cpu,cpuacct" / "job" / "cpu.cfs_period_us").write_text("100000\n")
        proc = "4:memory:/x\n3:cpu,cpuacct:/job\n0::/\n"
    (tmp_path / "proc_cgroup").write_text(proc)
    return str(root), str(tmp_path / "proc_cgroup")


@pytest.mark.parametrize(
    "limits,expected",
    [
        (("max 100000", "150000 100000", "max 100000"), 1.5),  # the parent's quota binds its children
        (("max 100000", "300000 100000", "50000 100000"), 0.5),  # the smallest along the path
        (("max 100000", None, "max 100000"), None),  # no quota anywhere
    ],
)
def test_cgroup_v2_cpu_quota_is_the_smallest_along_the_path(tmp_path, limits, expected):
    root, proc = _fake_cgroup(tmp_path, v2_limits=limits)
    assert cores.cgroup_cpu_limit(root, proc) == expected


@pytest.mark.parametrize("quota,expected", [(250000, 2.5), (-1, None)])
def test_cgroup_v1_cpu_quota(tmp_path, quota, expected):
    root, proc = _fake_cgroup(tmp_path, v1_quota=quota)
    assert cores.cgroup_cpu_limit(root, proc) == expected


def test_available_cores_is_capped_by_affinity_and_quota(monkeypatch):
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(cores, "cgroup_cpu_limit", lambda: None)
    assert cores.available_cores() == affinity
    monkeypatch.setattr(cores, "cgroup_cpu_limit", lambda: 0.4)  # a fraction of a core still needs a thread
    assert cores.available_cores() == 1
    monkeypatch.setattr(cores, "cgroup_cpu_limit", lambda: affinity + 8.0)
    assert cores.available_cores() == affinity


@pytest.fixture
def restore_threads():
    before = mc.get_num_threads()
    yield
    mc.set_num_threads(before)


def test_set_num_threads_sets_numba_and_rejects_bad_counts(restore_threads):
    mc.set_num_threads(1)
    assert mc.get_num_threads() == 1 == numba.get_num_threads()
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive integer"):
            mc.set_num_threads(bad)
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
        mc.set_num_threads(numba.config.NUMBA_NUM_THREADS + 1)


def _one_step_weights(tutorial_model, x, y):
    model = tutorial_model(seed=3, backend="numba")
    model.train_on_batch(x, y)
    return model.get_weights()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two cores for two thread counts")
def test_a_fixed_thread_count_gives_the_same_bits(tutorial_model, restore_threads):
    from conftest import synthetic_digits

    x, y = synthetic_digits(64, seed=1)
    runs = {}
    for n in (1, 2, 1, 2):
        mc.set_num_threads(n)
        runs.setdefault(n, []).append(_one_step_weights(tutorial_model, x, y))
    for n, (a, b) in runs.items():
        assert all(np.array_equal(u, v) for u, v in zip(a, b)), f"{n} threads: two runs differ"
    # another count only regroups float32 sums: equal to rounding
    assert all(np.allclose(u, v, rtol=1e-4, atol=1e-6) for u, v in zip(runs[1][0], runs[2][0]))


def test_pool_starts_passive_without_leaking_the_setting():
    # OMP_DISPLAY_ENV makes GNU OpenMP print the settings it read when it loaded
    proc = _python(
        """
        import os
        from minicnn.backend import get_backend
        from minicnn.backend.numba import threads
        get_backend("numba")
        print("info", threads.pool_info()["wait"], "| env", os.environ.get("OMP_WAIT_POLICY"))
    """,
        {"OMP_DISPLAY_ENV": "true"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "info OMP_WAIT_POLICY=passive | env None" in proc.stdout
    if "OPENMP DISPLAY ENVIRONMENT" in proc.stderr:  # GNU or LLVM OpenMP printed what it read
        assert "OMP_WAIT_POLICY = 'PASSIVE'" in proc.stderr


def test_a_users_wait_policy_wins():
    proc = _python(
        """
        from minicnn.backend.numba import threads
        print(threads.start_pool()["wait"])
    """,
        {"OMP_WAIT_POLICY": "active", "OMP_DISPLAY_ENV": "true"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "the user's: OMP_WAIT_POLICY=active" in proc.stdout
    if "OPENMP DISPLAY ENVIRONMENT" in proc.stderr:
        assert "OMP_WAIT_POLICY = 'ACTIVE'" in proc.stderr


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two cores to start fewer threads")
def test_pool_starts_with_the_cores_the_quota_allows():
    proc = _python("""
        import numba
        from minicnn.backend import cores
        cores.cgroup_cpu_limit = lambda: 1.0      # as in a container started with --cpus 1
        from minicnn.backend import get_backend
        get_backend("numba")
        print("threads", numba.get_num_threads())
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "threads 1" in proc.stdout


@pytest.mark.parametrize("command", ["minicnn.train", "minicnn.explain"])
def test_threads_flag_reaches_set_num_threads(command, tmp_path):
    too_many = str(numba.config.NUMBA_NUM_THREADS + 1)
    proc = subprocess.run(
        [sys.executable, "-m", command, "--threads", too_many, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and f"set_num_threads({too_many})" in proc.stderr, proc.stderr[-2000:]
    proc = subprocess.run(
        [sys.executable, "-m", command, "--threads", "0"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "--threads" in proc.stderr and "positive integer" in proc.stderr


def test_small_kernels_run_on_one_thread_only_while_the_pool_sleeps(restore_threads, monkeypatch):
    from minicnn.backend.numba import threads

    threads.start_pool()
    mc.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    before = numba.get_num_threads()
    monkeypatch.setitem(threads._pool, "sleeps", True)
    with threads.one_thread_when_small(threads.SERIAL_BELOW_SECONDS / 2):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before  # restored
    with threads.one_thread_when_small(threads.SERIAL_BELOW_SECONDS):
        assert numba.get_num_threads() == before  # enough work to pay for waking the pool
    with pytest.raises(RuntimeError, match="boom"), threads.one_thread_when_small(0.0):
        raise RuntimeError("boom")
    assert numba.get_num_threads() == before  # restored on an error too
    monkeypatch.setitem(threads._pool, "sleeps", False)  # spinning threads: a parallel loop starts in microseconds
    with threads.one_thread_when_small(0.0):
        assert numba.get_num_threads() == before


@pytest.mark.parametrize(
    "settings,sleeps",
    [({}, True), ({"OMP_WAIT_POLICY": "active"}, False), ({"OMP_WAIT_POLICY": "PASSIVE"}, True)],
)
def test_the_pool_says_whether_its_threads_sleep(settings, sleeps):
    proc = _python(
        """
        from minicnn.backend.numba import threads
        info = threads.start_pool()
        print("sleeps", info["layer"] != "omp" or info["sleeps"])
    """,
        settings,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = sleeps or numba.config.THREADING_LAYER not in ("default", "omp")  # other layers count as sleeping
    assert f"sleeps {want}" in proc.stdout


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two threads to compare with one")
@pytest.mark.parametrize("always", [True, False])
def test_running_small_kernels_on_one_thread_changes_no_bit(tutorial_model, restore_threads, monkeypatch, always):
    # Every kernel that one_thread_when_small may put on one thread must give the bits it gives on the pool: a
    # training step with the rule forced on (every kernel serial) or off (none) equals the default step.
    from conftest import synthetic_digits

    from minicnn.backend.numba import threads

    x, y = synthetic_digits(64, seed=1)
    mc.set_num_threads(2)
    default = _one_step_weights(tutorial_model, x, y)
    monkeypatch.setitem(threads._pool, "sleeps", True)
    monkeypatch.setattr(threads, "SERIAL_BELOW_SECONDS", float("inf") if always else 0.0)
    forced = _one_step_weights(tutorial_model, x, y)
    assert all(np.array_equal(u, v) for u, v in zip(default, forced))
