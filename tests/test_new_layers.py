"""The pooling and shape layers added after the tutorial's: AveragePooling2D, GlobalAveragePooling2D,
GlobalMaxPooling2D, ZeroPadding2D, Reshape (and the Activation layer's list of activations).

For each: float64 gradient checks against central differences (tolerance 1e-6 on |a - n| / (|a| + |n|), as in
tests/test_gradcheck_layers.py), Keras parity on identical inputs (the forward pass and the input gradient through
tf.GradientTape), a training step inside a Sequential on the numpy and numba backends, clear errors for bad
arguments, and Keras's layer names in summary().

Keras tolerances: float32 relative 1e-5 (absolute 1e-6 near zero): both sides sum up to 16 terms per window in
their own order, each float32 rounding 6e-8 relative. float64 relative 1e-12 (absolute 1e-13): the same sums, each
rounding 1e-16. The Keras tests skip without Keras unless MINICNN_REQUIRE_KERAS=1.
"""

import zlib

import numpy as np
import pytest
from conftest import KERAS_MISSING, import_keras

import minicnn as mc
from minicnn import layers
from minicnn.gradcheck import check_layer, check_model
from minicnn.keras_compat import check_architecture, compare_arrays
from minicnn.layers.activations import ACTIVATIONS

keras, tf = import_keras()

needs_keras = pytest.mark.skipif(keras is None, reason=KERAS_MISSING)
BACKENDS = ["numpy", "numba"]
TOL = 1e-6
KERAS_TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-13)}  # (relative, absolute near zero)
REPORT = {}  # (case, dtype, quantity) -> largest relative difference against Keras


# --- gradient checks -------------------------------------------------------------------------------------------
GRADCHECK_CASES = {
    "avg 2x2 valid": (lambda: layers.AveragePooling2D((2, 2)), (2, 6, 6, 3)),
    "avg 2x2 odd input": (lambda: layers.AveragePooling2D((2, 2)), (2, 7, 5, 1)),
    "avg 3x3 stride 2 same overlapping": (
        lambda: layers.AveragePooling2D((3, 3), strides=2, padding="same"),
        (2, 7, 6, 3),
    ),
    "avg 3x2 stride 1 valid overlapping": (lambda: layers.AveragePooling2D((3, 2), strides=1), (1, 5, 6, 2)),
    "avg 2x2 stride 1 same (padding after only)": (
        lambda: layers.AveragePooling2D(2, strides=1, padding="same"),
        (2, 5, 4, 2),
    ),
    "avg 4x4 stride 3 same": (lambda: layers.AveragePooling2D(4, strides=3, padding="same"), (1, 7, 5, 2)),
    "global average": (lambda: layers.GlobalAveragePooling2D(), (2, 5, 4, 3)),
    "global average keepdims": (lambda: layers.GlobalAveragePooling2D(keepdims=True), (3, 3, 7, 2)),
    "global max": (lambda: layers.GlobalMaxPooling2D(), (2, 5, 4, 3)),
    "global max keepdims": (lambda: layers.GlobalMaxPooling2D(keepdims=True), (3, 3, 7, 2)),
    "zero padding 1": (lambda: layers.ZeroPadding2D(), (2, 4, 3, 2)),
    "zero padding (top, bottom), (left, right)": (lambda: layers.ZeroPadding2D(((1, 2), (0, 3))), (2, 3, 5, 1)),
    "zero padding (height, width)": (lambda: layers.ZeroPadding2D((2, 1)), (1, 3, 3, 3)),
    "reshape 4-D to 2-D with -1": (lambda: layers.Reshape((-1, 6)), (2, 4, 3, 2)),
    "reshape 2-D to 4-D": (lambda: layers.Reshape((2, 3, 2)), (3, 12)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["elementwise", "direction"])
@pytest.mark.parametrize("case", list(GRADCHECK_CASES))
def test_new_layer_gradients_match_central_differences(case, mode, backend):
    make, shape = GRADCHECK_CASES[case]
    report = check_layer(make(), shape, mode=mode, tolerance=TOL, backend=backend)
    report.assert_ok()
    assert list(report.errors)  # at least the input gradient was checked


def test_gradcheck_catches_a_wrong_average_pooling_backward():
    # Dividing by the full window size instead of the real cells is the classic 'same' padding slip: the check must
    # see it (the corner windows of a 3x3 stride-2 'same' pooling of a 7x6 image hold 4 or 6 real cells, not 9).
    class FullWindowDivisor(layers.AveragePooling2D):
        def backward(self, grad):
            counts = mc.backend.numpy_ref.avgpool_counts(np, self.x_shape, self.window, grad.dtype)
            return super().backward(grad * counts[:, :, None] / 9)

    report = check_layer(FullWindowDivisor((3, 3), strides=2, padding="same"), (2, 7, 6, 3), tolerance=TOL)
    assert not report.passed and report.errors["input"] > 1e-2


def test_global_max_shares_the_gradient_between_tied_maxima():
    # TensorFlow's gradient of reduce_max (Keras's GlobalMaxPooling2D): each of k tied maxima gets dy / k.
    x = np.zeros((1, 2, 3, 2))
    x[0, 0, 0, 0] = x[0, 1, 2, 0] = 2.0  # channel 0: two maxima
    x[0, 1, 1, 1] = 5.0  # channel 1: one maximum
    layer = layers.GlobalMaxPooling2D()
    layer.build((2, 3, 2), mc.get_backend("numpy"), np.float64, np.random.default_rng(0))
    np.testing.assert_array_equal(layer.forward(x), [[2.0, 5.0]])
    dx = layer.backward(np.array([[3.0, 7.0]]))
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0] = expected[0, 1, 2, 0] = 1.5
    expected[0, 1, 1, 1] = 7.0
    np.testing.assert_array_equal(dx, expected)


# --- Keras parity ----------------------------------------------------------------------------------------------
def _keras_cases():
    k = keras.layers if keras is not None else None
    return [  # (id, minicnn layer, Keras layer (given its dtype), input shape)
        (
            "avg 2x2",
            lambda: layers.AveragePooling2D((2, 2)),
            lambda d: k.AveragePooling2D((2, 2), dtype=d),
            (2, 8, 8, 3),
        ),
        (
            "avg 2x2 odd input",
            lambda: layers.AveragePooling2D((2, 2)),
            lambda d: k.AveragePooling2D((2, 2), dtype=d),
            (2, 7, 5, 1),
        ),
        (
            "avg 3x3 s2 same overlapping",
            lambda: layers.AveragePooling2D((3, 3), strides=2, padding="same"),
            lambda d: k.AveragePooling2D((3, 3), strides=2, padding="same", dtype=d),
            (2, 9, 8, 3),
        ),
        (
            "avg 3x2 s1 valid overlapping",
            lambda: layers.AveragePooling2D((3, 2), strides=1),
            lambda d: k.AveragePooling2D((3, 2), strides=1, dtype=d),
            (1, 6, 7, 2),
        ),
        (
            "avg 2x2 s1 same",
            lambda: layers.AveragePooling2D(2, strides=1, padding="same"),
            lambda d: k.AveragePooling2D(2, strides=1, padding="same", dtype=d),
            (2, 5, 6, 2),
        ),
        (
            "avg 4x4 s3 same",
            lambda: layers.AveragePooling2D(4, strides=3, padding="same"),
            lambda d: k.AveragePooling2D(4, strides=3, padding="same", dtype=d),
            (1, 7, 5, 2),
        ),
        (
            "global average",
            lambda: layers.GlobalAveragePooling2D(),
            lambda d: k.GlobalAveragePooling2D(dtype=d),
            (2, 5, 6, 3),
        ),
        (
            "global average keepdims",
            lambda: layers.GlobalAveragePooling2D(keepdims=True),
            lambda d: k.GlobalAveragePooling2D(keepdims=True, dtype=d),
            (2, 7, 3, 4),
        ),
        ("global max", lambda: layers.GlobalMaxPooling2D(), lambda d: k.GlobalMaxPooling2D(dtype=d), (2, 5, 6, 3)),
        (
            "global max keepdims",
            lambda: layers.GlobalMaxPooling2D(keepdims=True),
            lambda d: k.GlobalMaxPooling2D(keepdims=True, dtype=d),
            (2, 7, 3, 4),
        ),
        ("zero padding default", lambda: layers.ZeroPadding2D(), lambda d: k.ZeroPadding2D(dtype=d), (2, 4, 5, 3)),
        (
            "zero padding pairs",
            lambda: layers.ZeroPadding2D(((1, 2), (0, 3))),
            lambda d: k.ZeroPadding2D(((1, 2), (0, 3)), dtype=d),
            (2, 3, 5, 2),
        ),
        (
            "zero padding (h, w)",
            lambda: layers.ZeroPadding2D((2, 1)),
            lambda d: k.ZeroPadding2D((2, 1), dtype=d),
            (1, 3, 3, 3),
        ),
        ("reshape -1", lambda: layers.Reshape((-1, 6)), lambda d: k.Reshape((-1, 6), dtype=d), (2, 4, 3, 2)),
        ("reshape to 4-D", lambda: layers.Reshape((2, 3, 2)), lambda d: k.Reshape((2, 3, 2), dtype=d), (3, 12)),
    ]


KERAS_CASE_IDS = [case[0] for case in _keras_cases()] if keras is not None else ["keras missing"]


def _keras_forward_backward(keras_layer, x, dy):
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = keras_layer(xt)
        total = tf.reduce_sum(y * tf.constant(dy))
    return y.numpy(), tape.gradient(total, xt).numpy()


def _ours_forward_backward(layer, x, dy, backend, dtype):
    be = mc.get_backend(backend)
    layer.build(x.shape[1:], be, dtype, np.random.default_rng(0))
    y = be.to_numpy(layer.forward(be.asarray(x)))
    return y, be.to_numpy(layer.backward(be.asarray(dy)))


@needs_keras
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case_id", KERAS_CASE_IDS)
def test_matches_keras_forward_and_input_gradient(case_id, dtype, backend):
    _, make, make_keras, shape = next(case for case in _keras_cases() if case[0] == case_id)
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))  # tie-free normal inputs, one stream per case
    x = rng.standard_normal(shape).astype(dtype)
    theirs = make_keras(np.dtype(dtype).name)
    ours = make()
    y_keras = theirs(tf.constant(x)).numpy()
    dy = rng.standard_normal(y_keras.shape).astype(dtype)
    y_keras, dx_keras = _keras_forward_backward(theirs, x, dy)
    y, dx = _ours_forward_backward(ours, x, dy, backend, dtype)
    assert (None,) + ours.output_shape == tuple(theirs.compute_output_shape((None,) + shape[1:]))
    rtol, atol = KERAS_TOL[dtype]
    for quantity, a, b in (("output", y, y_keras), ("input gradient", dx, dx_keras)):
        err = compare_arrays(a, b, f"{case_id} {np.dtype(dtype).name} {backend}: {quantity}", rtol=rtol, atol=atol)
        key = (case_id, np.dtype(dtype).name, quantity)
        REPORT[key] = max(REPORT.get(key, 0.0), err)


@needs_keras
@pytest.mark.parametrize("backend", BACKENDS)
def test_global_max_tie_gradient_matches_keras(backend):
    # Ties on purpose (the parity cases above avoid them): TensorFlow shares dy between the tied maxima.
    x = np.zeros((2, 3, 4, 2), np.float32)
    x[0, 0, 1, 0] = x[0, 2, 3, 0] = x[0, 1, 1, 0] = 1.5
    x[1, :, :, 1] = 0.25  # every pixel ties
    dy = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    _, dx_keras = _keras_forward_backward(keras.layers.GlobalMaxPooling2D(), x, dy)
    _, dx = _ours_forward_backward(layers.GlobalMaxPooling2D(), x, dy, backend, np.float32)
    compare_arrays(dx, dx_keras, "global max with ties: input gradient")
    assert dx_keras[0, 0, 1, 0] == pytest.approx(1.0 / 3)  # the rule we follow, as TensorFlow states it


@needs_keras
def test_keras_compat_compares_the_new_layers_settings():
    def keras_model(pad):
        return keras.Sequential(
            [
                keras.Input((9, 8, 2)),
                keras.layers.Conv2D(3, 3, activation="relu"),
                keras.layers.ZeroPadding2D(pad),
                keras.layers.AveragePooling2D(3, strides=2, padding="same"),
                keras.layers.GlobalMaxPooling2D(keepdims=True),
                keras.layers.Reshape((-1,)),
                keras.layers.Dense(4),
                keras.layers.Reshape((2, 2, 1)),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(2, activation="softmax"),
            ]
        )

    ours = mc.Sequential(
        [
            layers.Conv2D(3, 3, activation="relu", input_shape=(9, 8, 2)),
            layers.ZeroPadding2D(((1, 2), (0, 1))),
            layers.AveragePooling2D(3, strides=2, padding="same"),
            layers.GlobalMaxPooling2D(keepdims=True),
            layers.Reshape((-1,)),
            layers.Dense(4),
            layers.Reshape((2, 2, 1)),
            layers.GlobalAveragePooling2D(),
            layers.Dense(2, activation="softmax"),
        ],
        seed=0,
    )
    check_architecture(ours, keras_model(((1, 2), (0, 1))))
    with pytest.raises(ValueError, match="padding"):
        check_architecture(ours, keras_model(1))


# --- inside a model --------------------------------------------------------------------------------------------
def _model_layers(kind):
    conv = layers.Conv2D(3, (3, 3), activation="tanh", input_shape=(8, 7, 2))
    head = [layers.Dense(3, activation="softmax")]
    return {
        "AveragePooling2D": [conv, layers.AveragePooling2D((3, 3), strides=2, padding="same"), layers.Flatten()] + head,
        "GlobalAveragePooling2D": [conv, layers.GlobalAveragePooling2D()] + head,
        "GlobalMaxPooling2D": [conv, layers.GlobalMaxPooling2D(keepdims=True), layers.Flatten()] + head,
        "ZeroPadding2D": [
            conv,
            layers.ZeroPadding2D(((1, 0), (2, 1))),
            layers.Conv2D(2, (2, 2), strides=2),
            layers.Flatten(),
        ]
        + head,
        "Reshape": [
            conv,
            layers.Flatten(),
            layers.Dense(12, activation="tanh"),
            layers.Reshape((2, -1, 2)),
            layers.Conv2D(2, (2, 2)),
            layers.Reshape((-1,)),
        ]
        + head,
    }[kind]


MODEL_KINDS = ["AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D", "Reshape"]


def _data(dtype):
    rng = np.random.default_rng(1)
    return rng.standard_normal((5, 8, 7, 2)).astype(dtype), np.eye(3, dtype=dtype)[[0, 2, 1, 1, 0]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_trains_a_step_inside_a_sequential(kind, backend):
    model = mc.Sequential(_model_layers(kind), seed=3, backend=backend)
    model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.SGD(learning_rate=0.5))
    x, y = _data(np.float32)
    before = model.get_weights()
    losses = [model.train_on_batch(x, y)[0] for _ in range(3)]
    after = model.get_weights()
    assert all(np.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))  # every weight moved, below the layer too


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_model_gradients_agree_between_backends_and_with_central_differences(kind):
    # float64: the whole model's gradients (with the model's reused buffers) against central differences, and the
    # numba backend's against numpy's.
    x, y = _data(np.float64)
    grads = {}
    for backend in BACKENDS:
        model = mc.Sequential(_model_layers(kind), seed=3, backend=backend, dtype="float64")
        model.compile(loss="categorical_crossentropy", optimizer="sgd")
        check_model(model, x, y, mode="direction", tolerance=TOL).assert_ok()
        grads[backend] = model.compute_gradients(x, y)[1]
    for a, b in zip(grads["numpy"], grads["numba"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_summary_shows_keras_layer_names():
    model = mc.Sequential(
        [
            layers.ZeroPadding2D(input_shape=(6, 6, 2)),
            layers.AveragePooling2D(),
            layers.AveragePooling2D(1),
            layers.GlobalMaxPooling2D(keepdims=True),
            layers.Reshape((2,)),
            layers.Reshape((2, 1, 1)),
            layers.GlobalAveragePooling2D(),
        ]
    )
    text = model.summary(print_fn=lambda line: None)
    for row in (
        "zero_padding2d (ZeroPadding2D)",
        "(None, 8, 8, 2)",
        "average_pooling2d (AveragePooling2D)",
        "average_pooling2d_1 (AveragePooling2D)",
        "global_max_pooling2d (GlobalMaxPooling2D)",
        "(None, 1, 1, 2)",
        "reshape (Reshape)",
        "reshape_1 (Reshape)",
        "global_average_pooling2d (GlobalAveragePooling2D)",
    ):
        assert row in text, row


@needs_keras
def test_default_names_are_keras_names():
    # Keras numbers repeated names per session, so compare the base name only.
    for ours, theirs in (
        (layers.AveragePooling2D(), keras.layers.AveragePooling2D(2)),
        (layers.GlobalAveragePooling2D(), keras.layers.GlobalAveragePooling2D()),
        (layers.GlobalMaxPooling2D(), keras.layers.GlobalMaxPooling2D()),
        (layers.ZeroPadding2D(), keras.layers.ZeroPadding2D()),
        (layers.Reshape((4,)), keras.layers.Reshape((4,))),
    ):
        model = mc.Sequential([ours])
        assert theirs.name.rsplit("_", 1)[0] == ours.name or theirs.name == ours.name, (theirs.name, ours.name)
        assert model.layers[0] is ours


# --- the Activation layer offers what activation= offers -----------------------------------------------------
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_layer_equals_the_activation_argument(name):
    # Dense(activation=name) and Dense() followed by Activation(name), on the same weights: same output and same
    # input gradient, for every activation the layers' argument accepts.
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
    fused = mc.Sequential([layers.Dense(3, activation=name, input_shape=(5,))], seed=0, dtype="float64")
    split = mc.Sequential([layers.Dense(3, input_shape=(5,)), layers.Activation(name)], seed=0, dtype="float64")
    split.set_weights(fused.get_weights())
    np.testing.assert_allclose(split.predict(x), fused.predict(x), rtol=1e-15, atol=1e-15)
    input_grads = []
    for model in (fused, split):
        model.forward(x, training=False)
        grad = dy
        for layer in reversed(model.layers):
            grad = layer.backward(grad)
        input_grads.append(grad)
    np.testing.assert_allclose(input_grads[1], input_grads[0], rtol=1e-13, atol=1e-15)


def test_activation_names_are_the_same_set_and_unknown_ones_fail_alike():
    for name in ACTIVATIONS:
        layers.Activation(name), layers.Dense(2, activation=name), layers.Conv2D(2, 1, activation=name)
    for make in (
        lambda: layers.Activation("swishy"),
        lambda: layers.Dense(2, activation="swishy"),
        lambda: layers.Conv2D(2, 1, activation="swishy"),
    ):
        with pytest.raises(ValueError, match="unknown activation 'swishy'"):
            make()


@needs_keras
def test_every_activation_name_is_a_keras_activation():
    for name in ACTIVATIONS:
        assert keras.activations.get(name).__name__ == name


# --- bad arguments ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,error,words",
    [
        (lambda: layers.AveragePooling2D(0), ValueError, "pool_size"),
        (lambda: layers.AveragePooling2D("2"), TypeError, "pool_size"),
        (lambda: layers.AveragePooling2D(2, strides=(1, 2, 3)), TypeError, "strides"),
        (lambda: layers.AveragePooling2D(2, padding="full"), ValueError, "padding"),
        (lambda: layers.GlobalAveragePooling2D(keepdims="yes"), TypeError, "keepdims"),
        (lambda: layers.GlobalMaxPooling2D(keepdims=1), TypeError, "keepdims"),
        (lambda: layers.ZeroPadding2D(-1), ValueError, "padding"),
        (lambda: layers.ZeroPadding2D(1.5), TypeError, "padding"),
        (lambda: layers.ZeroPadding2D((1, 2, 3)), TypeError, "padding"),
        (lambda: layers.ZeroPadding2D(((1, 2), (3,))), TypeError, "width"),
        (lambda: layers.ZeroPadding2D(((1, -2), (3, 0))), ValueError, "height, after"),
        (lambda: layers.Reshape((-1, -1)), ValueError, "at most one -1"),
        (lambda: layers.Reshape((0, 2)), ValueError, "positive"),
        (lambda: layers.Reshape((2.5,)), TypeError, "target_shape"),
        (lambda: layers.Reshape("2,3"), TypeError, "target_shape"),
    ],
)
def test_bad_arguments_raise_clear_errors(make, error, words):
    with pytest.raises(error, match=words):
        make()


@pytest.mark.parametrize(
    "make,input_shape,words",
    [
        (lambda: layers.AveragePooling2D(4), (3, 5, 2), "does not fit its input 3x5"),
        (lambda: layers.AveragePooling2D(2), (6, 2), "height, width, channels"),
        (lambda: layers.GlobalAveragePooling2D(), (6, 2), "height, width, channels"),
        (lambda: layers.GlobalMaxPooling2D(), (4, 6, 2, 1), "height, width, channels"),
        (lambda: layers.ZeroPadding2D(), (10,), "height, width, channels"),
        (lambda: layers.Reshape((5,)), (2, 3), "6 values"),
        (lambda: layers.Reshape((-1, 4)), (2, 3), "not a multiple of 4"),
    ],
)
def test_shapes_that_do_not_fit_raise_naming_the_layer(make, input_shape, words):
    with pytest.raises(ValueError, match=words):
        mc.Sequential([make()]).build(input_shape)


@pytest.fixture(scope="module", autouse=True)
def print_report():
    yield
    if REPORT:
        lines = ["", "largest relative differences vs Keras " + keras.__version__]
        lines += [
            f"  {case:<30} {dtype:<8} {quantity:<15} {value:.2e}"
            for (case, dtype, quantity), value in sorted(REPORT.items())
        ]
        print("\n".join(lines))
