"""The structure the rest builds on: trainable and non-trainable weights, frozen layers, the trainer/model split,
and the fused convolution equal to the plain one."""

import ast
import os

import numpy as np
import pytest
from conftest import synthetic_digits

import minicnn as mc
from minicnn import layers
from minicnn.backend import get_backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class GainWithMean(layers.Layer):
    """y = x * gain; in training it also keeps a moving mean of x (state that is not trained), declared FIRST so
    that the test sees Keras's order (trainable weights first) rather than the order of declaration."""

    def create_params(self, rng):
        self.add_weight("moving_mean", np.zeros(self.input_shape[-1]), trainable=False)
        self.add_weight("gain", rng.uniform(0.5, 1.5, self.input_shape[-1]))

    def forward(self, x, training=False):
        if training:
            self.params["moving_mean"][...] = 0.9 * self.params["moving_mean"] + 0.1 * x.mean(axis=0)
        self.x = x
        return x * self.params["gain"]

    def backward(self, grad):
        self.grads["gain"][...] = (grad * self.x).sum(axis=0)
        return grad * self.params["gain"]


def small_model(seed=0, backend="numpy"):
    model = mc.Sequential(
        [layers.Dense(6, activation="relu", input_shape=(4,)), GainWithMean(), layers.Dense(3, activation="softmax")],
        seed=seed,
        backend=backend,
    )
    model.compile(optimizer=mc.optimizers.Adadelta())
    return model


def batch(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


def test_weights_are_in_keras_order_trainable_first_then_state():
    model = small_model()
    names = [name for name, _ in model.named_weights()]
    assert names == [
        "dense/kernel",
        "dense/bias",
        "gain_with_mean/gain",
        "gain_with_mean/moving_mean",
        "dense_1/kernel",
        "dense_1/bias",
    ]
    gain = model.layers[1]
    assert [id(w) for w in model.non_trainable_weights] == [id(gain.params["moving_mean"])]
    assert len(model.trainable_weights) == 5 and len(model.weights) == 6
    assert list(gain.grads) == ["gain"]  # no gradient for state that is not trained


def test_the_optimizer_sees_only_trainable_weights_and_state_changes_by_the_layer_alone():
    model = small_model()
    x, y = batch()
    loss, grads = model.compute_gradients(x, y)
    assert [g.shape for g in grads] == [w.shape for w in model.trainable_weights]
    model.train_on_batch(x, y)
    assert len(model.optimizer.accumulated_grad) == 5
    assert np.any(model.layers[1].params["moving_mean"] != 0)  # updated by the forward pass in training


def test_a_frozen_layer_keeps_its_weights_and_counts_as_non_trainable():
    model = small_model()
    model.layers[0].trainable = False
    before = [w.copy() for w in model.layers[0].weights]
    others = model.layers[2].params["kernel"].copy()
    model.train_on_batch(*batch())
    for old, new in zip(before, model.layers[0].weights):
        np.testing.assert_array_equal(old, new)
    assert not np.array_equal(others, model.layers[2].params["kernel"])
    text = model.summary(print_fn=None)
    frozen = model.layers[0].count_params() + 6  # dense's 30 plus the moving mean
    assert f"Non-trainable params: {frozen:,}" in text
    assert f"Trainable params: {model.count_params() - frozen:,}" in text
    assert len(model.compute_gradients(*batch())[1]) == 3


def test_set_weights_and_weight_files_carry_every_weight(tmp_path):
    model, other = small_model(seed=0), small_model(seed=5)
    model.train_on_batch(*batch())
    model.save_weights(tmp_path / "w.npz")
    other.load_weights(tmp_path / "w.npz")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    other.set_weights([w + 1 for w in model.get_weights()])
    np.testing.assert_array_equal(other.layers[1].params["moving_mean"], model.layers[1].params["moving_mean"] + 1)


def test_checkpoints_keep_state_and_optimizer_slots_per_trainable_weight(tmp_path):
    from minicnn.checkpoint import load_checkpoint

    model = small_model()
    x, y = batch(32)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    restored = small_model(seed=9)
    load_checkpoint(restored, tmp_path)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.optimizer.accumulated_delta, restored.optimizer.accumulated_delta):
        np.testing.assert_array_equal(a, b)


def test_a_weights_file_in_the_first_waves_format_loads(tmp_path):
    # what save_weights wrote before weights knew trainable from not: one entry per weight and a layer list
    model = mc.Sequential([layers.Dense(3, input_shape=(2,))], seed=0)
    kernel, bias = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)
    np.savez(tmp_path / "old.npz", **{"dense/kernel": kernel, "dense/bias": bias}, __layers__=np.array(["dense:Dense"]))
    model.load_weights(tmp_path / "old.npz")
    np.testing.assert_array_equal(model.get_weights()[0], kernel)


def _imports(path):
    tree = ast.parse(open(path).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.update(f"{'.' * node.level}{node.module or ''}.{a.name}".strip(".") for a in node.names)
            names.add(f"{'.' * node.level}{node.module or ''}")
    return names


def test_the_trainer_knows_no_model():
    imported = _imports(os.path.join(ROOT, "minicnn", "training.py"))
    assert not any("model" in name.split(".")[-1] for name in imported if "module" not in name), imported


def fused_and_plain_numba():
    """The Numba backend, and a second instance of it that does not fuse the convolution (the layer's plain path)."""
    try:
        fused = get_backend("numba")
    except ImportError as err:
        pytest.skip(f"numba backend unavailable: {err}")
    plain = type(fused)()
    plain.fuses_conv2d = False
    return fused, plain


CONV_CASES = [  # (input shape, filters, kernel, strides, padding, activation, use_bias)
    ((3, 9, 8, 2), 4, (3, 3), (1, 1), "valid", "relu", True),
    ((2, 7, 6, 3), 5, (3, 2), (2, 2), "same", "relu", False),
    ((2, 10, 10, 1), 3, (5, 5), (1, 1), "same", "linear", True),
    ((2, 8, 9, 2), 3, (2, 3), (2, 1), "valid", "tanh", True),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"{c[3]}-{c[4]}-{c[5]}" for c in CONV_CASES])
def test_the_fused_convolution_equals_the_plain_one(case):
    """The Numba backend's one-call convolution against the layer's plain path (im2col, product, bias, activation;
    dZ, dW, db, col2im) on the same backend, in float64: equal to rounding (the sums are grouped differently)."""
    shape, filters, kernel, strides, padding, activation, use_bias = case
    fused, plain = fused_and_plain_numba()
    assert fused.fuses_conv2d
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape) + 0.1
    results = []
    for backend in (fused, plain):
        layer = layers.Conv2D(
            filters, kernel, strides=strides, padding=padding, activation=activation, use_bias=use_bias
        )
        layer.build(shape[1:], backend, np.float64, np.random.default_rng(1))
        y = layer.forward(x.copy(), training=True).copy()
        dy = np.random.default_rng(2).normal(size=y.shape)
        dx = layer.backward(dy)
        results.append([y, dx] + [layer.grads[k].copy() for k in layer.grads])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_training_is_the_same_through_the_fused_and_the_plain_convolution():
    fused, plain = fused_and_plain_numba()
    x, y = synthetic_digits(16)
    weights = []
    for backend in (fused, plain):
        model = mc.Sequential(
            [
                layers.Conv2D(4, 5, activation="relu", input_shape=(28, 28, 1)),
                layers.MaxPooling2D(2),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ],
            seed=3,
            backend=backend,
            dtype="float64",
        )
        model.compile(optimizer=mc.optimizers.Adadelta())
        for _ in range(3):
            model.train_on_batch(x, y)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_convolution_can_end_the_model_under_the_fused_softmax_gradient(backend):
    # the loss hands the last layer dL/dz shaped like its output (N, OH, OW, F): both convolution paths take it
    try:
        get_backend(backend)
    except ImportError as err:
        pytest.skip(f"{backend} unavailable: {err}")
    model = mc.Sequential(
        [layers.Conv2D(3, (3, 3), activation="softmax", input_shape=(3, 3, 2))],
        seed=0,
        backend=backend,
        dtype="float64",
    )
    x = np.random.default_rng(0).normal(size=(4, 3, 3, 2))
    y = np.eye(3)[[0, 1, 2, 0]].reshape(4, 1, 1, 3)
    model.compile(optimizer="sgd")
    loss, grads = model.compute_gradients(x, y)
    eps = 1e-6
    w = model.layers[0].params["kernel"]
    w[0, 0, 0, 0] += eps
    up = model.evaluate(x, y, verbose=0)[0]
    w[0, 0, 0, 0] -= 2 * eps
    down = model.evaluate(x, y, verbose=0)[0]
    np.testing.assert_allclose(grads[0][0, 0, 0, 0], (up - down) / (2 * eps), rtol=1e-6)
