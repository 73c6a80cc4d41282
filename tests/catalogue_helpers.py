"""Shared pieces of the catalogue tests (tests/test_catalogue_*.py): a small model, and the real commands."""

import os
import re
import subprocess
import sys

import numpy as np
from conftest import synthetic_digits
from test_datasets import _real_mnist_dir

import minicnn as mc
from minicnn import layers

X, Y = synthetic_digits(16)


def small_model(seed=0, optimizer=None, backend="numpy", conv_filters=4):
    """A tiny CNN (conv, pool, dropout, dense) that trains in milliseconds."""
    model = mc.Sequential(
        [
            layers.Conv2D(conv_filters, (3, 3), strides=2, activation="relu", input_shape=(28, 28, 1)),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        seed=seed,
        backend=backend,
    )
    model.compile(
        loss="categorical_crossentropy", optimizer=optimizer or mc.optimizers.Adadelta(), metrics=["accuracy"]
    )
    return model


def command(module, args, env_extra=None, timeout=300, **popen):
    """Run ``python -m minicnn.<module> args`` on the real MNIST files; returns the CompletedProcess."""
    env = {**os.environ, "MPLBACKEND": "Agg", "MINICNN_DATA": _real_mnist_dir(), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", f"minicnn.{module}", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        **popen,
    )


def train(args, **kwargs):
    """``python -m minicnn.train`` on the numpy backend, 256 images, one epoch, one line per epoch (cheap), plus
    ``args``."""
    return command(
        "train", ["--backend", "numpy", "--limit", "256", "--epochs", "1", "--verbose", "2", *args], **kwargs
    )


def assert_one_line_error(proc, pattern):
    """Exit 2, a single ``error: ...`` line on stderr that matches ``pattern``, and no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert re.search(pattern, lines[0]), lines[0]


def weights_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
