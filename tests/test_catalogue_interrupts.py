"""Catalogue, Ctrl-C: a real SIGINT stops the commands cleanly on every backend, with a checkpoint that resumes."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from catalogue_helpers import X, Y, small_model
from test_datasets import _real_mnist_dir

from minicnn.interrupts import CtrlC, is_interrupt


def _interrupt(module, args, tmp_path):
    """Start ``python -m minicnn.<module> args``, wait for its first progress output, press Ctrl-C (SIGINT)."""
    env = {**os.environ, "MPLBACKEND": "Agg", "MINICNN_DATA": _real_mnist_dir(), "PYTHONUNBUFFERED": "1"}
    # --verbose 1: the live bar even into a pipe, so that its first "1/" shows that the steps have begun
    proc = subprocess.Popen(
        [sys.executable, "-m", f"minicnn.{module}", *args, "--verbose", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = ""
    while "1/" not in seen:  # the progress bar's "1/16": training has started
        char = proc.stdout.read(1)
        assert char, f"the command ended before training: {proc.stderr.read()[-2000:]}"
        seen += char
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_ctrl_c_in_train_exits_130_with_one_line_and_a_checkpoint_that_resumes(backend, tmp_path):
    ck, out = tmp_path / "ck", tmp_path / "out"
    common = ["--backend", backend, "--limit", "2048", "--batch-size", "128", "--checkpoint-dir", str(ck)]
    rc, err = _interrupt("train", common + ["--epochs", "2", "--out", str(out)], tmp_path)
    assert rc == 130, err[-2000:]
    assert "Traceback" not in err and "SystemError" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("training interrupted at epoch 1"), lines
    assert "checkpoint written to" in lines[0]
    assert os.listdir(ck) == ["checkpoint.npz"]
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "minicnn.train",
            *common,
            "--epochs",
            "1",
            "--resume",
            "--verbose",
            "2",
            "--out",
            str(tmp_path / "out2"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg", "MINICNN_DATA": _real_mnist_dir()},
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (tmp_path / "out2" / "weights.npz").exists()


def test_ctrl_c_in_explain_on_numpy_stops_it(tmp_path):
    rc, err = _interrupt("explain", ["--backend", "numpy", "--steps", "60", "--out", str(tmp_path / "e")], tmp_path)
    assert rc == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("training interrupted")
    assert not (tmp_path / "e" / "trace.txt").exists()  # it stopped; it did not go on tracing


def test_numbas_system_error_around_a_keyboard_interrupt_counts_as_ctrl_c():
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise SystemError(
                "CPUDispatcher(<function conv_forward>) returned a result with an exception set"
            ) from inner
    except SystemError as err:
        assert is_interrupt(err)
    assert not is_interrupt(SystemError("something else"))
    assert not is_interrupt(ValueError("x"))


def test_fit_turns_the_numba_system_error_into_a_clean_stop(tmp_path):
    model = small_model()
    original = model.train_step
    calls = []

    def step(xb, yb, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as inner:
                raise SystemError("returned a result with an exception set") from inner
        return original(xb, yb, **kwargs)

    model.train_step = step
    hist = model.fit(X, Y, batch_size=4, epochs=2, verbose=0, checkpoint_dir=tmp_path)
    assert hist.stopped == {"reason": "interrupted", "epoch": 1, "step": 2}
    assert (tmp_path / "checkpoint.npz").exists()


def test_the_ctrl_c_handler_is_installed_only_during_fit_and_restored_after():
    before = signal.getsignal(signal.SIGINT)
    seen = []
    model = small_model()
    original = model.train_step

    def step(xb, yb, **kwargs):
        seen.append(signal.getsignal(signal.SIGINT))
        if len(seen) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C during the first step
        return original(xb, yb, **kwargs)

    model.train_step = step
    hist = model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    assert hist.stopped["reason"] == "interrupted" and hist.stopped["step"] == 1  # stopped after that step
    assert seen[0] is not before and signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_pressed_twice_interrupts_at_once():
    with CtrlC() as ctrl_c:
        os.kill(os.getpid(), signal.SIGINT)
        assert ctrl_c.pressed
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            np.zeros(1).sum()  # the handler runs between bytecodes
