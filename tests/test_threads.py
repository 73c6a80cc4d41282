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


class _FakeWatch:
    def __init__(self, free):
        self.free = free

    def free_cores(self):
        return self.free


def test_small_kernels_run_on_one_thread_only_while_the_pool_sleeps(restore_threads, monkeypatch):
    from minicnn.backend.numba import threads

    threads.start_pool()
    mc.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    before = numba.get_num_threads()
    monkeypatch.setitem(threads._pool, "sleeps", True)
    monkeypatch.setattr(threads, "_watch", [])  # no busy cores seen
    with threads.kernel_threads(threads.SERIAL_BELOW_SECONDS / 2):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before  # restored
    with threads.kernel_threads(threads.SERIAL_BELOW_SECONDS):
        assert numba.get_num_threads() == before  # enough work to pay for waking the pool
    with pytest.raises(RuntimeError, match="boom"), threads.kernel_threads(0.0):
        raise RuntimeError("boom")
    assert numba.get_num_threads() == before  # restored on an error too
    monkeypatch.setitem(threads._pool, "sleeps", False)  # spinning threads: a parallel loop starts in microseconds
    with threads.kernel_threads(0.0):
        assert numba.get_num_threads() == before


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two threads to run on fewer")
def test_kernels_run_on_the_cores_other_processes_leave(restore_threads, monkeypatch):
    from minicnn.backend.numba import threads

    threads.start_pool()
    mc.set_num_threads(2)
    monkeypatch.setitem(threads._pool, "sleeps", False)
    monkeypatch.setattr(threads, "_watch", [_FakeWatch(free=1)])
    with threads.kernel_threads(1.0):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == 2
    monkeypatch.setattr(threads, "_watch", [_FakeWatch(free=2)])
    with threads.kernel_threads(1.0):
        assert numba.get_num_threads() == 2


def test_busy_seconds_adds_the_busy_columns_of_the_cores_asked_for():
    from minicnn.backend.busy_cores import busy_seconds

    text = "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 1 2 3 400 50 6 7 8 0 0\ncpu1 10 20 30 4000 500 60 70 80 0 0\nintr 5\n"
    hz = os.sysconf("SC_CLK_TCK")
    assert busy_seconds(text, {0}) == (1 + 2 + 3 + 6 + 7 + 8) / hz  # idle (400) and iowait (50) left out
    assert busy_seconds(text, {0, 1}) == (27 + 270) / hz
    assert busy_seconds(text, {0, 2}) is None  # a core /proc/stat does not list


def test_busy_cores_are_the_busy_time_less_this_process_own():
    from minicnn.backend.busy_cores import BusyCores

    hz = os.sysconf("SC_CLK_TCK")
    state = {"t": 0.0, "busy": 0, "own": 0.0}

    def stat():
        return f"cpu0 {state['busy']} 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0\n"

    watch = BusyCores({0, 1}, read_stat=stat, own_seconds=lambda: state["own"], clock=lambda: state["t"])
    assert watch.readable and watch.others() == 0.0 and watch.free_cores() == 2
    state.update(t=0.2, busy=hz, own=0.1)
    assert watch.others() == 0.0  # under an interval since the last sample: the estimate waits
    state.update(t=1.0, busy=2 * hz, own=0.2)  # 2 s of busy cores in 1 s, 0.2 s of them this process's
    assert watch.others() == pytest.approx(1.8)
    assert watch.free_cores() == 1
    state.update(t=2.0, busy=2 * hz + hz // 2, own=0.7)  # the others stopped: the busy time was all ours
    assert watch.others() == pytest.approx(0.0) and watch.free_cores() == 2
    assert not BusyCores({0}, read_stat=lambda: None).readable


def test_busy_seconds_can_leave_niced_time_out_and_refuses_a_malformed_line():
    from minicnn.backend.busy_cores import BUSY_COLUMNS_WITHOUT_NICE, busy_seconds

    hz = os.sysconf("SC_CLK_TCK")
    text = "cpu0 1 2 3 400 50 6 7 8 0 0\n"
    assert busy_seconds(text, {0}, BUSY_COLUMNS_WITHOUT_NICE) == (1 + 3 + 6 + 7 + 8) / hz  # nice (2) left out
    assert busy_seconds("cpu0 1 x 3 400 50 6 7 8 0 0\n", {0}) is None


def _fake_busy_cores(state, cpus=(0, 1)):
    from minicnn.backend.busy_cores import BusyCores

    def stat():
        return None if state.get("unreadable") else f"cpu0 {state['busy']} 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0\n"

    return BusyCores(set(cpus), read_stat=stat, own_seconds=lambda: state["own"], clock=lambda: state["t"])


def test_free_cores_round_half_up_and_forget_what_can_no_longer_be_read():
    hz = os.sysconf("SC_CLK_TCK")
    state = {"t": 0.0, "busy": 0, "own": 0.0}
    watch = _fake_busy_cores(state)
    state.update(t=1.0, busy=hz // 2)  # others took half a core: 1.5 cores left, rounded up to 2
    assert watch.others() == pytest.approx(0.5) and watch.free_cores() == 2
    state.update(t=2.0, busy=hz // 2 + 3 * hz // 2)  # one and a half: 0.5 left, rounded up to 1
    assert watch.others() == pytest.approx(1.5) and watch.free_cores() == 1
    state.update(t=3.0, unreadable=True)  # /proc/stat went away: nothing known, nothing changed
    assert watch.others() == 0.0 and watch.free_cores() == 2


def test_a_forked_child_does_not_count_its_parents_time_as_others(monkeypatch):
    hz = os.sysconf("SC_CLK_TCK")
    state = {"t": 0.0, "busy": 0, "own": 5.0}
    watch = _fake_busy_cores(state)
    # In a child os.times() restarts at 0: 1 s of busy cores against an own time that went from 5 to 0 would read
    # as 6 cores taken by others if the parent's sample were used.
    monkeypatch.setattr(os, "getpid", lambda: -1)
    state.update(t=1.0, busy=hz, own=0.0)
    assert watch.others() == 0.0 and watch.free_cores() == 2
    state.update(t=2.0, busy=2 * hz, own=1.0)  # from the child's own sample on, its own time is its
    assert watch.others() == pytest.approx(0.0)


def test_niced_time_counts_as_busy_only_for_a_niced_process(monkeypatch):
    from minicnn.backend import busy_cores

    monkeypatch.setattr(busy_cores, "_niceness", lambda: 0)
    assert busy_cores.BusyCores({0}, read_stat=lambda: None)._columns == busy_cores.BUSY_COLUMNS_WITHOUT_NICE
    monkeypatch.setattr(busy_cores, "_niceness", lambda: 19)
    assert busy_cores.BusyCores({0}, read_stat=lambda: None)._columns == busy_cores.BUSY_COLUMNS


@pytest.mark.skipif(not os.path.exists("/proc/stat") or not hasattr(os, "sched_getaffinity"), reason="Linux only")
@pytest.mark.skipif(len(getattr(os, "sched_getaffinity", lambda _: ())(0)) < 2, reason="needs two cores")
@pytest.mark.parametrize("setting,adapts", [({}, True), ({"MINICNN_ADAPT_THREADS": "0"}, False)])
def test_the_pool_watches_busy_cores_by_default(setting, adapts):
    from minicnn.backend.cores import cgroup_cpu_limit

    limit = cgroup_cpu_limit()
    if limit is not None and limit < len(os.sched_getaffinity(0)):
        pytest.skip("a CPU quota below the affinity mask turns the watch off")
    proc = _python(
        """
        from minicnn.backend.numba import threads
        print("adapts", threads.start_pool()["adapts"])
    """,
        {"MINICNN_ADAPT_THREADS": "1", **setting},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"adapts {adapts}" in proc.stdout


@pytest.mark.skipif(not os.path.exists("/proc/stat") or not hasattr(os, "sched_getaffinity"), reason="Linux only")
def test_busy_cores_see_a_busy_process_beside_this_one():
    from minicnn.backend.busy_cores import BusyCores
    from minicnn.backend.cores import cgroup_cpu_limit

    if (cgroup_cpu_limit() or 2.0) < 2.0:
        pytest.skip("under a CPU quota of under 2 cores the busy process may not get a whole core")

    watch = BusyCores(os.sched_getaffinity(0))
    watch.interval = 1.0
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass"]
    )
    try:
        import time

        time.sleep(0.3)
        watch.others()  # a sample with the busy process running
        time.sleep(1.2)
        assert watch.others() >= 0.7  # one core's worth, less the clock ticks lost at the edges
    finally:
        busy.kill()
        busy.wait()


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
    # Every kernel that kernel_threads may run on fewer threads must give the bits it gives on the pool: a training
    # step with every kernel on one thread, or with none, equals the default step.
    from conftest import synthetic_digits

    from minicnn.backend.numba import threads

    x, y = synthetic_digits(64, seed=1)
    mc.set_num_threads(2)
    default = _one_step_weights(tutorial_model, x, y)
    monkeypatch.setitem(threads._pool, "sleeps", True)
    monkeypatch.setattr(threads, "_watch", [])
    monkeypatch.setattr(threads, "SERIAL_BELOW_SECONDS", float("inf") if always else 0.0)
    forced = _one_step_weights(tutorial_model, x, y)
    assert all(np.array_equal(u, v) for u, v in zip(default, forced))
