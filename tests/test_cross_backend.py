"""The same model on every backend: identical weights give the same outputs and gradients.

float64: relative 1e-12 (sums in another order only). float32: relative 1e-4 on the gradient norm-wise error
(|a - b|_max / |b|_max): cuBLAS/OpenBLAS block their sums differently, and each float32 product carries a
relative rounding of 6e-8 times the square root of up to 800 summed terms, amplified through 5 layers.
"""

import numpy as np
import pytest
from conftest import synthetic_digits, tutorial_layers

import minicnn as mc


def _backend_or_skip(name):
    try:
        return mc.get_backend(name)
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"backend {name!r} unavailable here: {err}")


def _model(backend, dtype, seed=11):
    model = mc.Sequential(tutorial_layers(), seed=seed, backend=backend, dtype=dtype)
    model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.Adadelta(), metrics=["accuracy"])
    return model


@pytest.mark.parametrize("name", ["numba", "cupy"])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-4)])
def test_outputs_and_gradients_agree_with_numpy_backend(name, dtype, tol):
    _backend_or_skip(name)
    x, y = synthetic_digits(16, seed=2)
    ref, other = _model("numpy", dtype), _model(name, dtype)
    for a, b in zip(ref.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)  # weights are drawn on the host: identical on every backend
    np.testing.assert_allclose(other.predict(x), ref.predict(x), rtol=tol, atol=tol * 1e-2)
    loss_ref, g_ref = ref.compute_gradients(x, y)
    loss, g = other.compute_gradients(x, y)
    assert loss == pytest.approx(loss_ref, rel=tol)
    for a, b in zip(g, g_ref):
        assert np.abs(a - b).max() <= tol * np.abs(b).max()


@pytest.mark.parametrize("name", ["numba", "cupy"])
def test_training_steps_agree_with_numpy_backend(name):
    _backend_or_skip(name)
    x, y = synthetic_digits(32, seed=3)
    ref, other = _model("numpy", "float64", seed=4), _model(name, "float64", seed=4)
    for layer in ref.layers + other.layers:
        if hasattr(layer, "rate"):
            layer.rate = 0.0  # random streams differ across backends: compare without dropout
    for _ in range(3):
        assert other.train_on_batch(x, y)[0] == pytest.approx(ref.train_on_batch(x, y)[0], rel=1e-10)
    for a, b in zip(other.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
