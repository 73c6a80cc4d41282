"""What the trace shows a learner of every layer (``describe``, ``multiply_adds``, ``batch_statistics_summary``,
``repr``), on what mutation testing (mutmut) showed no other fast test pinned down: the shapes of the matrix
products agree with the multiply-adds counted from the weights and the output, each formula defines its left side
and names the layer's own settings, and the batch statistics are those of the batch."""

import re

import numpy as np
import pytest
from test_mutants_layers import _every_layer

import minicnn as mc
from minicnn import layers


def _built(index):
    layer, shape = _every_layer()[index]
    config = {k: v for k, v in layer.get_config().items() if k != "name"}
    model = mc.Sequential([type(layer)(**config, input_shape=shape)], seed=2, backend="numpy", dtype="float64")
    return model.layers[0], shape


def _products(text):
    """The (rows, inner) @ (inner, columns) products of a ``products`` string, with the batch N set to 1."""
    found = re.findall(r"\(([^()]*)\) @ \(([^()]*)\)", text.replace("N*", "").replace("N", "1"))
    return [(tuple(int(v) for v in a.split(", ")), tuple(int(v) for v in b.split(", "))) for a, b in found]


@pytest.mark.parametrize(
    "layer,shape",
    [
        (layers.Conv2D(3, (3, 2), strides=(2, 1), padding="same"), (6, 5, 2)),
        (layers.Conv2D(4, 5, activation="relu"), (12, 9, 3)),
        (layers.Dense(7, activation="relu"), (5,)),
        (layers.Dense(3), (11,)),
    ],
    ids=["conv-same-strided", "conv-valid", "dense-7", "dense-3"],
)
def test_the_products_shown_are_the_multiply_adds_counted_from_weights_and_output(layer, shape):
    model = mc.Sequential([layer.__class__(**layer.get_config(), input_shape=shape)], seed=1, backend="numpy")
    built = model.layers[0]
    y = model.predict(np.zeros((1, *shape), np.float32))
    kernel = built.params["kernel"]
    # every output value is one dot product over a kernel's column: output positions x the kernel's size
    positions = int(np.prod(y.shape[1:-1])) if y.ndim > 2 else 1
    assert built.multiply_adds() == positions * kernel.size
    products = _products(built.describe()["products"])
    assert len(products) == 3  # forward, then the backward's dW and dX
    for (rows, inner), (inner_too, columns) in products:
        assert inner == inner_too
        assert rows * inner * columns == built.multiply_adds()  # each of the three costs what the forward does
    (_, k), (_, f) = products[0]
    assert (k, f) == (int(np.prod(kernel.shape[:-1])), kernel.shape[-1])


@pytest.mark.parametrize("index", range(12))
def test_every_formula_defines_its_left_side_and_products_go_with_multiply_adds(index):
    layer, _ = _built(index)
    described = layer.describe()
    assert set(described) == {"forward", "backward", "products"}
    assert re.match(r"(Y|Xhat) = \S", described["forward"]), described["forward"]
    assert re.match(r"(dX|dZ|dbeta) = \S", described["backward"]), described["backward"]
    assert (described["products"] == "") == (layer.multiply_adds() == 0)


@pytest.mark.parametrize("index", range(12))
def test_every_formula_names_the_layers_own_operation_and_settings(index):
    layer, _ = _built(index)
    forward, backward = layer.describe()["forward"], layer.describe()["backward"]
    config = layer.get_config()
    if "activation" in config:
        assert f"{config['activation']}(" in forward
        assert ("act'(Z)" in backward) or (f"{config['activation']}'(X)" in backward)
    name = type(layer).__name__
    if name in ("MaxPooling2D", "AveragePooling2D"):
        (ph, pw), (sh, sw) = layer.pool_size, layer.strides
        assert f"each {ph}x{pw} window (stride {sh}x{sw}" in forward
        assert ("max over" if name == "MaxPooling2D" else "mean over") in forward
        assert "window" in backward
    if name in ("GlobalMaxPooling2D", "GlobalAveragePooling2D"):
        assert ("max of X" if name == "GlobalMaxPooling2D" else "mean of X") in forward
        assert "over height and width, per channel" in forward
        assert "dY" in backward
    if name == "Dropout":
        assert f"[U >= {layer.rate}] / {1 - layer.rate:g} (training)" in forward and backward == "dX = dY * M"
    if name == "BatchNormalization":
        assert f"sqrt(var + {layer.epsilon:g})" in forward
        assert f"moving = {layer.momentum:g} * moving + {1 - layer.momentum:g} * batch" in forward
        assert ("gamma * Xhat" in forward) == layer.scale and ("Xhat + beta" in forward) == layer.center
        assert "(training)" in backward and "(inference)" in backward
    if name == "ZeroPadding2D":
        (top, bottom), (left, right) = layer.padding
        assert f"(top {top}, bottom {bottom}, left {left}, right {right})" in forward
        assert "middle of dY" in backward
    if name == "Reshape":
        assert forward == f"Y = X.reshape(N, {', '.join(map(str, layer.output_shape))})"
        assert "dY.reshape" in backward
    if name == "Flatten":
        assert "reshape(N, H*W*C)" in forward and "reshape(N, H, W, C)" in backward


@pytest.mark.parametrize("scale,center", [(True, True), (False, True), (True, False)])
def test_batch_normalization_formula_shows_gamma_and_beta_only_when_it_has_them(scale, center):
    bn = layers.BatchNormalization(scale=scale, center=center, epsilon=0.25, momentum=0.75, input_shape=(3, 2))
    mc.Sequential([bn], backend="numpy")
    forward = bn.describe()["forward"]
    assert forward.startswith(f"Xhat = (X - mean) / sqrt(var + 0.25); Y = {'gamma * ' if scale else ''}Xhat")
    assert ("+ beta (batch mean" in forward) == center and "moving = 0.75 * moving + 0.25 * batch)" in forward


def test_batch_statistics_summary_is_the_last_training_batchs_mean_and_variance():
    bn = layers.BatchNormalization(input_shape=(4, 3))
    model = mc.Sequential([bn], backend="numpy", dtype="float64")
    assert bn.batch_statistics_summary() is None  # nothing seen yet
    x = np.random.default_rng(3).standard_normal((5, 4, 3)) * np.array([1.0, 2.0, 3.0]) + np.array([0.5, -1, 2])
    bn.forward(x, training=True)
    mean, var = x.reshape(-1, 3).mean(axis=0), x.reshape(-1, 3).var(axis=0)
    summary = bn.batch_statistics_summary()
    assert summary["channels"] == 3
    assert summary["mean_min"] == pytest.approx(mean.min()) and summary["mean_max"] == pytest.approx(mean.max())
    assert summary["var_min"] == pytest.approx(var.min()) and summary["var_max"] == pytest.approx(var.max())
    assert model.predict(x).shape == x.shape


def test_layers_without_products_count_no_multiply_adds_and_the_base_layer_says_so():
    base = mc.layers.Layer()
    assert base.multiply_adds() == 0 and base.describe()["products"] == ""
    assert re.match(r"y = f\(x\)$", base.describe()["forward"]) and base.describe()["backward"].startswith("dX = ")
    with pytest.raises(NotImplementedError):
        base.forward(np.zeros(2))
    with pytest.raises(NotImplementedError):
        base.backward(np.zeros(2))


def test_repr_names_the_class_the_name_and_once_built_the_output_shape():
    dense = layers.Dense(3, name="scores", input_shape=(4,))
    assert repr(dense) == "<Dense 'scores'>"
    mc.Sequential([dense], backend="numpy")
    assert repr(dense) == "<Dense 'scores' -> (3,)>"
