"""minicnn and PyTorch's autograd compute the same numbers: the tutorial's model in float64, minicnn's weights loaded
into its PyTorch twin (minicnn.torch_bridge), outputs, loss, input gradient and every parameter gradient compared.

Tolerance: relative error ||minicnn - torch|| / ||torch|| < 1e-10 per tensor. Both sides do the same float64
arithmetic in different orders (im2col products against direct convolutions, a fused (P - Y) / N against autograd
through log-softmax), so they differ by rounding only: about 1e-15 relative per operation, a few hundred summed
operations deep. Skips when PyTorch is absent, unless MINICNN_REQUIRE_TORCH=1 (set by .ci/run).
"""

import os

import numpy as np
import pytest
from conftest import synthetic_digits, tutorial_layers

import minicnn as mc

if os.environ.get("MINICNN_REQUIRE_TORCH") == "1":
    import torch  # noqa: F401  (CI: its absence must fail, not skip)
torch = pytest.importorskip("torch", reason="PyTorch not installed; pip install '.[torch]'")
bridge = pytest.importorskip("minicnn.torch_bridge")

TOLERANCE = 1e-10


def float64_model(layers, seed=0):
    model = mc.Sequential(layers, seed=seed, backend="numpy", dtype="float64")
    model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.Adadelta())
    return model


def test_the_tutorial_model_matches_pytorch_autograd_in_float64():
    model = float64_model(tutorial_layers())
    x, y = synthetic_digits(6, seed=1)
    errors = bridge.compare_step(model, x, y)
    names = ["probabilities", "loss", "input gradient"] + [
        f"{n}/{k}" for n in ("conv2d", "conv2d_1", "dense", "dense_1", "dense_2") for k in ("kernel", "bias")
    ]
    assert sorted(errors) == sorted(names)
    bad = {name: err for name, err in errors.items() if not err < TOLERANCE}
    assert not bad, bad


def test_padding_and_strides_match_pytorch():
    """Uneven "same" padding (zeros for a convolution, -inf for max pooling), strides, tanh and sigmoid."""
    layers = [
        mc.layers.Conv2D(4, (3, 3), strides=2, padding="same", activation="tanh", input_shape=(9, 8, 2)),
        mc.layers.MaxPooling2D((2, 2), strides=1, padding="same"),
        mc.layers.Conv2D(3, (2, 2), padding="same", activation="sigmoid"),
        mc.layers.AveragePooling2D((2, 2)),
        mc.layers.Flatten(),
        mc.layers.Dense(5, activation="softmax"),
    ]
    model = float64_model(layers)
    rng = np.random.default_rng(3)
    errors = bridge.compare_step(model, rng.standard_normal((3, 9, 8, 2)), np.eye(5)[[0, 4, 2]])
    assert max(errors.values()) < TOLERANCE, errors


def test_a_wrongly_loaded_kernel_is_caught():
    """The comparison can fail: a conv kernel loaded with its height and width swapped ((F, C, KW, KH), a classic
    slip when converting layouts) gives other outputs and gradients."""
    model = float64_model(tutorial_layers())
    x, y = synthetic_digits(4, seed=2)
    twin = bridge.TorchTwin(model)
    with torch.no_grad():
        twin.torch_layers[0].weight.copy_(twin.torch_layers[0].weight.transpose(2, 3).clone())
    errors = bridge.compare_step(model, x, y, twin=twin)
    assert errors["probabilities"] > 1e-3 and errors["conv2d/kernel"] > 1e-2, errors


def test_an_unsupported_layer_is_named():
    model = float64_model(
        [mc.layers.Dense(3, activation="softmax", input_shape=(4,)), mc.layers.Dense(2, activation="softmax")]
    )
    with pytest.raises(ValueError, match="dense"):
        bridge.TorchTwin(model)
