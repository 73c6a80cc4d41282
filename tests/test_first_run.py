"""The first run: a line while Numba compiles the kernels (once; cached afterwards), and the compile time kept out of
the progress bar's rate and estimated time left."""

import io
import os
import subprocess
import sys
import textwrap

import pytest

from minicnn import progress as progress_module
from minicnn.progress import Progress


@pytest.fixture
def fake_clock(monkeypatch):
    """One clock for tqdm and Progress, moved by hand."""
    clock = [1000.0]
    monkeypatch.setattr("tqdm.std.time", lambda: clock[0])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: clock[0])
    return clock


class Terminal(io.StringIO):
    """A file that says it is a terminal, so that verbose=1 draws the live bar (not one line per epoch)."""

    def isatty(self):
        return True


def _bar_after_slow_first_step(clock, compiling):
    # 100 steps of 0.1 s, but the first step also compiles for 19.9 s; the bar is refreshed after step 10
    p = Progress(1, 1, steps=100, file=Terminal())
    p.begin(0)
    clock[0] += 20.0
    if compiling:
        p.exclude(19.9)
    clock[0] += 0.9
    p.update(10, 1.0, 0.5)
    fmt = p.bar.format_dict
    return (fmt["total"] - fmt["n"]) / fmt["rate"], p.bar.postfix


def test_eta_leaves_out_the_seconds_spent_compiling(fake_clock):
    remaining, postfix = _bar_after_slow_first_step(fake_clock, compiling=True)
    assert remaining == pytest.approx(9.0)  # 90 steps left at 0.1 s
    assert postfix.startswith("100ms/step")


def test_eta_without_exclusion_counts_the_slow_first_step(fake_clock):
    remaining, postfix = _bar_after_slow_first_step(fake_clock, compiling=False)  # what the exclusion corrects
    assert remaining > 150 and postfix.startswith("2090ms/step")


def test_note_prints_a_line_above_the_bar_and_alone_without_one():
    out = io.StringIO()
    p = Progress(2, 1, steps=5, file=out)
    p.begin(0)
    p.note("compiling numba kernels (once; cached afterwards)...")
    assert out.getvalue() == "compiling numba kernels (once; cached afterwards)...\n"
    silent = io.StringIO()
    Progress(0, 1, steps=5, file=silent).note("x")
    assert silent.getvalue() == ""


FIT_TINY = """
    import numpy as np, minicnn as mc
    from minicnn import layers
    model = mc.Sequential([layers.Flatten(input_shape=(6, 6, 1)), layers.Dense(10, activation="softmax")],
                          seed=0, backend="numba")
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    rng = np.random.default_rng(0)
    x = rng.random((40, 6, 6, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 40)]
    model.fit(x, y, batch_size=8, epochs=1, verbose=2)
"""


def _fit_tiny(cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FIT_TINY)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_an_empty_cache_shows_the_compile_line_and_a_warm_one_does_not(tmp_path):
    pytest.importorskip("numba")
    first = _fit_tiny(tmp_path / "numba-cache")
    lines = first.splitlines()
    assert lines[0] == "compiling numba kernels (once; cached afterwards)..."
    assert lines[1].startswith("... compiled in ") and lines[1].endswith(" s")
    assert lines[2].startswith("Epoch 1/1 - ")
    second = _fit_tiny(tmp_path / "numba-cache")  # the same cache: loaded, nothing compiled
    assert "compiling" not in second and second.startswith("Epoch 1/1 - ")
