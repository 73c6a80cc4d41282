"""BatchNormalization: its backward pass by central differences in float64 (training mode inside a loss that depends
on the batch statistics, and inference mode), a wrong backward caught, Keras 3 parity on identical weights, the Numba
kernels against the reference, the layer inside Sequential (training, saving, summary), and its argument checks.

Tolerances: gradient checks in float64, relative 1e-6 (errors measured ~1e-8 and below). Keras parity: float32
relative 1e-5 or absolute 1e-6 near zero (sums of up to 150 float32 terms in another order: a few 1e-7 relative);
float64 relative 1e-12 (measured 2e-14). Numba against the reference: float32 1e-5 and float64 1e-12 relative
to the largest value (the sums over rows run in 64 blocks of rows here, in NumPy's order there); bitwise where the
arithmetic is the same (the elementwise passes of inference, forward and backward).
"""

import numpy as np
import pytest
from conftest import KERAS_MISSING, import_keras

import minicnn as mc
from minicnn import layers
from minicnn.backend import get_backend
from minicnn.gradcheck import check_layer, check_model, relative_error
from minicnn.keras_compat import compare_arrays, load_keras_weights
from minicnn.layers import BatchNormalization

keras, tf = import_keras()
needs_keras = pytest.mark.skipif(keras is None, reason=KERAS_MISSING)

BACKENDS = ["numpy", "numba"]
CONFIGS = [{}, {"center": False}, {"scale": False}, {"center": False, "scale": False}]
CONFIG_IDS = ["gamma+beta", "no beta", "no gamma", "neither"]


def uniform(lo, hi):
    """An initializer drawing U(lo, hi)."""

    def init(shape, rng, dtype="float32"):
        return rng.uniform(lo, hi, size=shape).astype(dtype)

    return init


def random_bn(**kwargs):
    """A BatchNormalization whose weights are neither Keras's defaults (gamma = 1 would hide a missing factor gamma)
    nor near 0 (gradient entries near 0 drown in the central differences' rounding noise)."""
    return BatchNormalization(
        gamma_initializer=uniform(0.5, 1.5),
        beta_initializer=uniform(-1.0, 1.0),
        moving_mean_initializer=uniform(-0.5, 0.5),
        moving_variance_initializer=uniform(0.5, 2.0),
        **kwargs,
    )


class StatisticsBlindBN(BatchNormalization):
    """WRONG on purpose: in training it returns dX = gamma * inv_std * dY, as if the batch mean and variance did not
    depend on x (the inference formula). dgamma and dbeta stay right."""

    def backward(self, grad):
        self.batch_statistics = False
        return super().backward(grad)


# --- gradient checks -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("shape", [(4, 3, 5, 3), (7, 4)], ids=["NHWC", "N,features"])
def test_layer_gradients_in_training(shape, config, backend):
    for mode in ("elementwise", "direction"):
        report = check_layer(random_bn(**config), shape, mode=mode, training=True, backend=backend)
        report.assert_ok()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", [{}, {"center": False, "scale": False}], ids=["gamma+beta", "neither"])
@pytest.mark.parametrize("shape", [(4, 3, 5, 3), (7, 4)], ids=["NHWC", "N,features"])
def test_layer_gradients_in_inference(shape, config, backend):
    check_layer(random_bn(**config), shape, mode="elementwise", training=False, backend=backend).assert_ok()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_backward_ignoring_the_batch_statistics_is_caught(backend):
    report = check_layer(
        StatisticsBlindBN(gamma_initializer=uniform(0.5, 1.5)), (4, 3, 5, 3), training=True, backend=backend
    )
    assert not report.passed
    assert report.errors["input"] > 1e-2
    assert report.errors["StatisticsBlindBN.gamma"] < 1e-6 and report.errors["StatisticsBlindBN.beta"] < 1e-6
    # ...while in inference the same formula is the right one
    check_layer(
        StatisticsBlindBN(gamma_initializer=uniform(0.5, 1.5)), (4, 3, 5, 3), training=False, backend=backend
    ).assert_ok()


def small_network(kind, bn, backend):
    """A float64 network whose loss depends on the batch statistics: BN between a linear layer and a nonlinearity,
    cross-entropy on top. ``kind``: "conv" (NHWC) or "dense" ((N, features))."""
    if kind == "conv":
        stack = [
            layers.Conv2D(3, (3, 3), input_shape=(6, 5, 2)),
            bn,
            layers.Activation("tanh"),
            layers.Flatten(),
            layers.Dense(4, activation="softmax"),
        ]
        x_shape = (5, 6, 5, 2)
    else:
        stack = [
            layers.Dense(6, input_shape=(5,)),
            bn,
            layers.Activation("tanh"),
            layers.Dense(4, activation="softmax"),
        ]
        x_shape = (7, 5)
    model = mc.Sequential(stack, dtype="float64", seed=3, backend=backend)
    model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.SGD(0.1))
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape)
    y = np.eye(4)[rng.integers(0, 4, x_shape[0])]
    return model, x, y


def check_model_in_training(model, x, y, h=1e-6):
    """The largest relative error of every trainable weight's and the input's gradient, by central differences of
    the loss computed with ``training=True`` (so the BN layers use, and differentiate through, the batch
    statistics; the moving statistics they update do not enter the loss)."""
    xb, yb = model.prepare_inputs(x), model.prepare_targets(y, len(x))
    _, _, _, dx = model.forward_backward(xb, yb, training=True)
    analytic = [dx.copy()] + [g.copy() for g in model.gradients]
    names = ["input"] + [f"{layer.name}.{k}" for layer in model.layers for k in layer.weight_names(trainable=True)]
    errors = {}
    for name, a, g in zip(names, [xb] + list(model.trainable_weights), analytic):
        numeric = np.empty(a.shape)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + h
            plus = float(model.loss.forward(np, model.forward(xb, training=True), yb))
            a[idx] = old - h
            minus = float(model.loss.forward(np, model.forward(xb, training=True), yb))
            a[idx] = old
            numeric[idx] = (plus - minus) / (2 * h)
        errors[name] = float(relative_error(g, numeric, floor=1e-4).max())
    return errors


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_network_gradients_through_batch_statistics(kind, backend):
    # floor 1e-4: a central difference of the loss (~1.4) carries a rounding noise of ~1e-10, a relative error of 1e-6
    # for an entry of 1e-4; smaller entries (a few of the input gradient, down to 1e-5) are judged by their absolute
    # error, 1e-10 (see check_model's docstring). The largest entries are ~0.1.
    model, x, y = small_network(kind, random_bn(), backend)
    check_model(model, x, y, mode="elementwise", max_checks=None, floor=1e-4).assert_ok()  # inference: moving stats
    check_model(model, x, y, mode="direction").assert_ok()
    errors = check_model_in_training(model, x, y)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_network_check_catches_a_backward_ignoring_the_batch_statistics(kind):
    model, x, y = small_network(kind, StatisticsBlindBN(gamma_initializer=uniform(0.5, 1.5)), "numpy")
    errors = check_model_in_training(model, x, y)
    assert errors["input"] > 1e-2 and max(v for k, v in errors.items() if k.startswith(("conv2d", "dense."))) > 1e-2


# --- the Numba kernels against the reference ----------------------------------------------------------------
KERNEL_SHAPES = [(1, 1), (1, 5), (3, 1), (7, 3), (64, 5), (65, 2), (130, 17), (1001, 3)]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def assert_close(got, want, tol, what):
    scale = max(float(np.abs(want).max()), 1e-30)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_numba_kernels_equal_reference(shape, dtype, affine):
    ref, fast = get_backend("numpy"), get_backend("numba")
    rng = np.random.default_rng(sum(shape))
    m, c = shape
    x = (3 * rng.standard_normal((c, m)) + 2).astype(dtype).T  # a transposed view: not contiguous
    dy = rng.standard_normal((m, c)).astype(dtype)
    g, b = (rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)) if affine else (None, None)
    want, got = ref.batchnorm_forward_training(x, g, b, 1e-3), fast.batchnorm_forward_training(x, g, b, 1e-3)
    for k, a, w in zip(("y", "xhat", "mean", "var", "inv_std"), got, want):
        assert a.dtype == dtype
        assert_close(a, w, TOL[dtype], k)
    mean, var = want[2], want[3]
    for a, w in zip(
        fast.batchnorm_forward_inference(x, mean, var, g, b, 1e-3),
        ref.batchnorm_forward_inference(x, mean, var, g, b, 1e-3),
    ):
        np.testing.assert_array_equal(a, w)  # the same arithmetic: bitwise
    xhat, inv_std = want[1], want[4]
    for training in (True, False):
        got_b = fast.batchnorm_backward(dy, xhat, g, inv_std, training)
        want_b = ref.batchnorm_backward(dy, xhat, g, inv_std, training)
        for k, a, w in zip(("dx", "dgamma", "dbeta"), got_b, want_b):
            if k == "dx" and not training:
                np.testing.assert_array_equal(a, w, err_msg=k)  # dy * gamma * inv_std: bitwise
            else:
                assert_close(a, w, TOL[dtype], k)


def test_numba_kernels_write_into_buffers_and_do_not_depend_on_the_thread_count():
    import numba

    fast = get_backend("numba")
    rng = np.random.default_rng(5)
    x, dy = rng.standard_normal((2 * 24 * 24, 32)), rng.standard_normal((2 * 24 * 24, 32))
    g, b = rng.uniform(0.5, 1.5, 32), rng.standard_normal(32)
    y_buf, xhat_buf, dx_buf, dg, db = (np.empty_like(x), np.empty_like(x), np.empty_like(x), np.empty(32), np.empty(32))
    y, xhat, _, _, inv_std = fast.batchnorm_forward_training(x, g, b, 1e-3, out=y_buf, xhat_out=xhat_buf)
    assert y is y_buf and xhat is xhat_buf
    dx, dgamma, dbeta = fast.batchnorm_backward(dy, xhat, g, inv_std, True, out=dx_buf, dgamma_out=dg, dbeta_out=db)
    assert dx is dx_buf and dgamma is dg and dbeta is db
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fast.batchnorm_forward_training(x, g, b, 1e-3) + fast.batchnorm_backward(dy, xhat, g, inv_std, True)
    finally:
        numba.set_num_threads(threads)
    for a, w in zip(one, (y, xhat) + fast.batchnorm_forward_training(x, g, b, 1e-3)[2:] + (dx, dgamma, dbeta)):
        np.testing.assert_array_equal(a, w)


# --- Keras parity ---------------------------------------------------------------------------------------------
REPORT = {}


@pytest.fixture(scope="module", autouse=True)
def print_report():
    yield
    if REPORT:
        print("\nBatchNormalization: largest relative differences vs Keras " + keras.__version__)
        for key, value in sorted(REPORT.items()):
            print(f"  {' / '.join(key):<58} {value:.2e}")


PARITY_TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


@needs_keras
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "shape,config",
    [((3, 5, 4, 6), {}), ((3, 5, 4, 6), {"center": False, "scale": False}), ((8, 10), {}), ((8, 10), {"scale": False})],
    ids=["NHWC", "NHWC neither", "N,features", "N,features no gamma"],
)
def test_equals_keras(shape, config, dtype, backend):
    rng = np.random.default_rng(7)
    ours = random_bn(**config)
    ours.build(shape[1:], get_backend(backend), dtype, rng)
    theirs = keras.layers.BatchNormalization(dtype=dtype, **config)
    theirs.build(shape)
    theirs.set_weights([np.array(w) for w in ours.weights])
    tol = PARITY_TOL[dtype]

    def compare(a, b, what):
        key = (dtype, what)
        REPORT[key] = max(REPORT.get(key, 0.0), compare_arrays(a, b, f"{backend} {dtype} {config}: {what}", **tol))

    for training in (True, False):
        mode = "training" if training else "inference"
        x = (2 + 3 * rng.standard_normal(shape)).astype(dtype)
        upstream = rng.standard_normal(shape).astype(dtype)
        y = ours.forward(x, training=training).copy()
        dx = ours.backward(upstream.copy())
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y_keras = theirs(xt, training=training)
            total = tf.reduce_sum(y_keras * upstream)
        grads = tape.gradient(total, [xt] + list(theirs.trainable_weights))
        compare(y, y_keras.numpy(), f"{mode} forward")
        compare(dx, grads[0].numpy(), f"{mode} input gradient")
        for key, g in zip(ours.weight_names(trainable=True), grads[1:]):
            compare(ours.grads[key], g.numpy(), f"{mode} {key} gradient")
    for _ in range(10):
        x = (1 + 2 * rng.standard_normal(shape)).astype(dtype)
        ours.forward(x, training=True)
        theirs(x, training=True)
    compare(ours.params["moving_mean"], theirs.moving_mean.numpy(), "moving_mean after 10 steps")
    compare(ours.params["moving_variance"], theirs.moving_variance.numpy(), "moving_variance after 10 steps")


def keras_bn_network(**bn_config):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((6, 5, 2)),
            L.Conv2D(3, (3, 3), use_bias=False),
            L.BatchNormalization(**bn_config),
            L.Activation("relu"),
            L.Flatten(),
            L.Dense(4, activation="softmax"),
        ]
    )


def bn_network(backend="numpy", dtype="float32", seed=0, **bn_config):
    return mc.Sequential(
        [
            layers.Conv2D(3, (3, 3), use_bias=False, input_shape=(6, 5, 2)),
            layers.BatchNormalization(**bn_config),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.Dense(4, activation="softmax"),
        ],
        backend=backend,
        dtype=dtype,
        seed=seed,
    )


@needs_keras
def test_keras_weights_load_from_a_model_and_from_a_weights_file(tmp_path):
    keras.utils.set_random_seed(1)
    theirs = keras_bn_network()
    rng = np.random.default_rng(8)
    weights = theirs.get_weights()  # conv kernel, gamma, beta, moving_mean, moving_variance, dense kernel, bias
    weights[1:5] = [rng.uniform(0.5, 1.5, 3), rng.standard_normal(3), rng.standard_normal(3), rng.uniform(0.5, 2, 3)]
    theirs.set_weights([w.astype(np.float32) for w in weights])
    x = rng.standard_normal((5, 6, 5, 2)).astype(np.float32)
    expected = theirs.predict(x, verbose=0)
    from_object = bn_network()
    load_keras_weights(from_object, theirs)
    compare_arrays(from_object.predict(x), expected, "BN network loaded from a Keras model: predictions")
    path = str(tmp_path / "bn.weights.h5")
    theirs.save_weights(path)
    from_file = bn_network()
    load_keras_weights(from_file, path)
    for a, b in zip(from_file.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="momentum is 0.99 in minicnn, 0.9 in Keras"):
        load_keras_weights(bn_network(), keras_bn_network(momentum=0.9))
    with pytest.raises(ValueError, match="center"):
        load_keras_weights(bn_network(), keras_bn_network(center=False))


# --- inside Sequential ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_trains_inside_sequential_and_saves_its_moving_statistics(backend, tmp_path):
    model = bn_network(backend)
    model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.SGD(0.1))
    rng = np.random.default_rng(9)
    x = (1 + 2 * rng.standard_normal((16, 6, 5, 2))).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 16)]
    losses = [model.train_on_batch(x, y)[0] for _ in range(15)]
    assert losses[-1] < losses[0]
    bn = model.layers[1]
    assert bn.weight_names() == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert bn.weight_names(trainable=False) == ["moving_mean", "moving_variance"]
    assert not np.allclose(bn.params["moving_mean"], 0.0) and not np.allclose(bn.params["moving_variance"], 1.0)
    assert len(model.trainable_weights) == 5 and len(model.non_trainable_weights) == 2  # conv, gamma, beta, dense x2
    path = tmp_path / "bn.npz"
    model.save_weights(path)
    again = bn_network(backend, seed=1)
    again.load_weights(path)
    np.testing.assert_array_equal(again.layers[1].params["moving_variance"], bn.params["moving_variance"])
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_numpy_and_numba_train_the_same_in_float64():
    rng = np.random.default_rng(10)
    x = 1 + 2 * rng.standard_normal((16, 6, 5, 2))
    y = np.eye(4)[rng.integers(0, 4, 16)]
    models = [bn_network(b, dtype="float64") for b in BACKENDS]
    for model in models:
        model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.SGD(0.1))
        for _ in range(5):
            model.train_on_batch(x, y)
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)  # the sums over rows in another order only


def test_summary_counts_the_moving_statistics_as_non_trainable():
    text = bn_network().summary(print_fn=None)
    # conv 3*3*2*3 = 54, BN 4*3 = 12 (gamma, beta trainable; moving mean and variance not), dense 36*4 + 4 = 148
    assert "batch_normalization (BatchNormalization)" in text
    assert "Total params: 214" in text and "Trainable params: 208" in text and "Non-trainable params: 6" in text
    plain = bn_network(center=False, scale=False).summary(print_fn=None)  # no gamma, no beta: 6 fewer
    assert "Trainable params: 202" in plain and "Non-trainable params: 6" in plain


@pytest.mark.parametrize(
    "config,names",
    [
        ({"center": False}, ["gamma", "moving_mean", "moving_variance"]),
        ({"scale": False}, ["beta", "moving_mean", "moving_variance"]),
        ({"center": False, "scale": False}, ["moving_mean", "moving_variance"]),
    ],
)
def test_weights_absent_without_center_or_scale(config, names):
    bn = bn_network(**config).layers[1]
    assert bn.weight_names() == names and sorted(bn.grads) == sorted(n for n in names if not n.startswith("moving"))


def test_a_frozen_layer_normalises_with_its_moving_statistics_in_training():
    model = bn_network(dtype="float64")
    bn = model.layers[1]
    bn.trainable = False  # Keras: a frozen BatchNormalization runs in inference mode
    x = np.random.default_rng(11).standard_normal((4, 6, 5, 2))
    before = [p.copy() for p in bn.weights]
    np.testing.assert_array_equal(model.forward(x, training=True), model.forward(x, training=False))
    for a, b in zip(bn.weights, before):
        np.testing.assert_array_equal(a, b)
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4


def test_defaults_and_config_are_keras():
    bn = BatchNormalization()
    assert (bn.axis, bn.momentum, bn.epsilon, bn.center, bn.scale) == (-1, 0.99, 1e-3, True, True)
    bn.build((3,), get_backend("numpy"), np.float32, np.random.default_rng(0))
    assert [bn.params[k].tolist() for k in bn.weight_names()] == [[1, 1, 1], [0, 0, 0], [0, 0, 0], [1, 1, 1]]
    assert bn.get_config()["momentum"] == 0.99 and "sqrt(var + 0.001)" in bn.describe()["forward"]


# --- bad arguments ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"momentum": 1.0}, ValueError, r"momentum must be in \[0, 1\)"),
        ({"momentum": -0.1}, ValueError, r"momentum must be in \[0, 1\)"),
        ({"momentum": "0.9"}, TypeError, "momentum must be a number"),
        ({"epsilon": 0.0}, ValueError, "epsilon must be > 0"),
        ({"epsilon": -1e-3}, ValueError, "epsilon must be > 0"),
        ({"epsilon": None}, TypeError, "epsilon must be a number"),
        ({"axis": 1.0}, TypeError, "axis must be an int"),
        ({"axis": [-1]}, TypeError, "axis must be an int"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchNormalization(**kwargs)


@pytest.mark.parametrize("axis", [1, 2, -2, 0])
def test_an_axis_other_than_the_channels_is_refused(axis):
    with pytest.raises(ValueError, match=r"last axis \(channels_last\) only: axis=-1 \(or 3 for inputs of rank 4\)"):
        mc.Sequential([BatchNormalization(axis=axis, input_shape=(5, 4, 3))])


def test_the_last_axis_by_its_positive_index_is_accepted():
    assert mc.Sequential([BatchNormalization(axis=3, input_shape=(5, 4, 3))]).output_shape == (5, 4, 3)
    assert mc.Sequential([BatchNormalization(axis=1, input_shape=(7,))]).output_shape == (7,)
