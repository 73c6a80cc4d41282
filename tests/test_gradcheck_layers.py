"""Every layer's hand-written backward pass against central differences in float64.

Tolerance 1e-6 on the relative error |a - n| / (|a| + |n|): with h = 1e-6 in float64, rounding and truncation
errors of the central difference are near 1e-10 and 1e-12, so a correct gradient lands far below it.
"""

import numpy as np
import pytest

import minicnn as mc
from minicnn import layers
from minicnn.gradcheck import check_layer, check_model

TOL = 1e-6

LAYER_CASES = {
    "conv valid 3x3 stride1 1ch": (lambda: layers.Conv2D(2, (3, 3)), (2, 6, 6, 1)),
    "conv same 3x3 stride2 3ch relu": (
        lambda: layers.Conv2D(3, (3, 3), strides=2, padding="same", activation="relu"),
        (2, 7, 6, 3),
    ),
    "conv non-square kernel, odd input, stride (2,1)": (
        lambda: layers.Conv2D(2, (2, 3), strides=(2, 1), activation="tanh"),
        (2, 7, 5, 3),
    ),
    "conv same 4x4 even kernel stride1 no bias": (
        lambda: layers.Conv2D(2, (4, 4), padding="same", use_bias=False),
        (1, 5, 6, 2),
    ),
    "conv 5x5 sigmoid": (lambda: layers.Conv2D(2, 5, activation="sigmoid"), (2, 7, 7, 1)),
    "pool 2x2": (lambda: layers.MaxPooling2D((2, 2)), (2, 6, 6, 3)),
    "pool 2x2 odd input": (lambda: layers.MaxPooling2D((2, 2)), (2, 7, 5, 1)),
    "pool 3x3 stride 2 overlapping same": (
        lambda: layers.MaxPooling2D((3, 3), strides=2, padding="same"),
        (2, 7, 6, 3),
    ),
    "pool 3x2 stride 1 overlapping valid": (lambda: layers.MaxPooling2D((3, 2), strides=1), (1, 5, 6, 2)),
    "dense linear": (lambda: layers.Dense(4), (3, 5)),
    "dense relu": (lambda: layers.Dense(4, activation="relu"), (3, 5)),
    "dense softmax": (lambda: layers.Dense(4, activation="softmax"), (3, 5)),
    "dense tanh no bias": (lambda: layers.Dense(3, activation="tanh", use_bias=False), (2, 6)),
    "flatten": (lambda: layers.Flatten(), (2, 3, 4, 2)),
    "activation softmax": (lambda: layers.Activation("softmax"), (3, 4)),
    "activation sigmoid": (lambda: layers.Activation("sigmoid"), (3, 4)),
}


@pytest.mark.parametrize("mode", ["elementwise", "direction"])
@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_layer_gradients_match_central_differences(case, mode):
    make, shape = LAYER_CASES[case]
    report = check_layer(make(), shape, mode=mode, tolerance=TOL)
    report.assert_ok()
    assert len(report.errors) >= 1


def test_dropout_gradient_uses_the_same_mask_as_forward():
    report = check_layer(layers.Dropout(0.4), (4, 6), training=True, tolerance=TOL)
    report.assert_ok()


def test_gradcheck_catches_a_wrong_backward():
    # A check that cannot fail is worthless: break Dense's input gradient and expect a failure.
    layer = layers.Dense(3)
    original = layer.backward_linear
    layer.backward_linear = lambda g: 1.01 * original(g)
    report = check_layer(layer, (2, 4), tolerance=TOL)
    assert not report.passed and report.errors["input"] > 1e-3
    with pytest.raises(AssertionError, match="input"):
        report.assert_ok()


@pytest.mark.parametrize("mode", ["elementwise", "direction"])
def test_tutorial_model_gradients_match_central_differences(tutorial_model, mode):
    model = tutorial_model(dtype="float64", dropout=(0.2, 0.5))
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (3, 28, 28, 1))
    y = np.eye(10)[[1, 7, 3]]
    # floor=1e-3: entries smaller than that (down to 3e-7 here, against a largest of 6e-2) are judged by their
    # absolute error (<= 1e-9), since the central difference's own rounding noise (measured up to 2.5e-10 at
    # h = 1e-6; the analytic value agrees to 1e-13 with h = 1e-3) is a large fraction of them.
    report = check_model(model, x, y, mode=mode, max_checks=8, tolerance=TOL, floor=1e-3)
    report.assert_ok()
    assert len(report.errors) == (11 if mode == "elementwise" else 1)


def test_model_gradcheck_refuses_float32(tutorial_model):
    model = tutorial_model()
    with pytest.raises(ValueError, match="float64"):
        check_model(model, np.zeros((1, 28, 28, 1)), np.eye(10)[:1])


def test_non_softmax_output_uses_the_clipped_loss_gradient():
    # Dense(sigmoid) + cross-entropy goes through dL/dp = -y/(N p), not the fused softmax shortcut.
    model = mc.Sequential(
        [layers.Dense(3, activation="sigmoid", input_shape=(4,))], dtype="float64", seed=0, backend="numpy"
    )
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    x = np.random.default_rng(0).standard_normal((5, 4))
    y = np.eye(3)[[0, 1, 2, 0, 1]]
    check_model(model, x, y, max_checks=None, tolerance=TOL).assert_ok()
