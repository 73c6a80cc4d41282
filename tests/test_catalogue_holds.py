"""Catalogue, what already held when the cases were tried (kept so that it keeps holding): odd array layouts give
identical results, SIGTERM leaves the last checkpoint whole, swapped data files are caught by their checksums."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from catalogue_helpers import X, Y, small_model
from test_datasets import _real_mnist_dir

from minicnn.checkpoint import load_checkpoint


@pytest.mark.parametrize(
    "layout",
    [
        lambda x: np.asfortranarray(x),
        lambda x: np.concatenate([x, x], axis=3)[..., ::2],  # a strided view
        lambda x: x.astype(np.float64),
        lambda x: x[::-1][::-1],  # negative strides, same values
    ],
    ids=["fortran", "strided", "float64", "reversed-view"],
)
def test_odd_array_layouts_train_to_identical_weights(layout):
    a, b = small_model(seed=6), small_model(seed=6)
    a.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    b.fit(layout(X), Y, batch_size=4, epochs=1, verbose=0)
    assert all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


def test_sigterm_during_training_leaves_the_last_checkpoint_whole(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "MINICNN_DATA": _real_mnist_dir(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "minicnn.train",
            "--backend",
            "numpy",
            "--limit",
            "640",
            "--batch-size",
            "64",
            "--epochs",
            "50",
            "--verbose",
            "2",
            "--checkpoint-dir",
            str(tmp_path / "ck"),
            "--out",
            str(tmp_path / "o"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = ""
    while not line.startswith("Epoch 1/"):
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-2000:]
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGTERM
    meta = load_checkpoint(small_model_for_tutorial(), tmp_path / "ck")
    assert meta["epochs_done"] >= 1 and len(meta["history"]["loss"]) == meta["epochs_done"]


def small_model_for_tutorial():
    from minicnn.recipes import build_model

    return build_model("tutorial", seed=42, backend="numpy")


def test_swapped_mnist_files_are_caught_by_their_checksums(tmp_path):
    from minicnn.datasets import DataFileError, mnist

    src = _real_mnist_dir()
    for name in os.listdir(src):
        shutil.copy(os.path.join(src, name), tmp_path / name)
    names = sorted(n for n in os.listdir(tmp_path) if "labels" in n)
    a, b = (tmp_path / names[0]), (tmp_path / names[1])
    tmp = tmp_path / "swap"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    with pytest.raises(DataFileError, match="checksum mismatch|shape"):
        mnist.load_data(tmp_path)


def test_a_resume_with_the_same_settings_is_bitwise_exact(tmp_path):
    straight = small_model(seed=2)
    straight.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    small_model(seed=2).fit(X, Y, batch_size=4, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    resumed = small_model(seed=2)
    resumed.fit(X, Y, batch_size=4, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    assert all(np.array_equal(p, q) for p, q in zip(straight.get_weights(), resumed.get_weights()))
