import numpy as np
import pytest

import minicnn as mc
from minicnn import layers


def tutorial_layers(dropout=(0.2, 0.5)):
    """The R keras tutorial's CNN (186,110 parameters)."""
    return [
        layers.Conv2D(32, (5, 5), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (5, 5), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(dropout[0]),
        layers.Flatten(),
        layers.Dense(120, activation="relu"),
        layers.Dropout(dropout[1]),
        layers.Dense(84, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ]


@pytest.fixture
def tutorial_model():
    def make(seed=0, backend="numpy", dtype="float32", dropout=(0.2, 0.5)):
        model = mc.Sequential(tutorial_layers(dropout), seed=seed, backend=backend, dtype=dtype)
        model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.Adadelta(), metrics=["accuracy"])
        return model

    return make


def synthetic_digits(n, seed=0, size=28):
    """A small learnable image task: class k is a bright 6x6 square at one of 10 fixed places, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    x = rng.uniform(0, 0.3, (n, size, size, 1)).astype(np.float32)
    for i, k in enumerate(labels):
        r, c = 2 + 8 * (k // 4), 2 + 6 * (k % 4)
        x[i, r : r + 6, c : c + 6, 0] += 0.7
    return x, np.eye(10, dtype=np.float32)[labels]


def import_keras():
    """``(keras, tensorflow)``, or ``(None, None)`` when they are not installed; under MINICNN_REQUIRE_KERAS=1 (set
    by .ci/run) their absence is an ImportError instead, so that the parity tests cannot skip in CI."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError:  # pragma: no cover - depends on the machine
        if os.environ.get("MINICNN_REQUIRE_KERAS") == "1":
            raise
        return None, None
    return keras, tf


KERAS_MISSING = "Keras/TensorFlow not installed; pip install '.[reference]'"


def promised_outputs(block):
    """For each ``print(`` line of a markdown code block, the output its comment promises (on the same line, or on
    the next line when that line is only a comment), else None: the guides' tests check the printed values."""
    lines = block.splitlines()
    promises = []
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("print("):
            continue
        if "#" in line:
            promises.append(line.split("#", 1)[1].strip())
        elif i + 1 < len(lines) and lines[i + 1].startswith("# "):
            promises.append(lines[i + 1][2:].strip())
        else:
            promises.append(None)
    return promises
