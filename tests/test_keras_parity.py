"""minicnn against Keras 3 (TensorFlow backend) on identical weights: every layer, the loss, the optimizers,
the whole tutorial model. Skips when Keras is absent, unless MINICNN_REQUIRE_KERAS=1 (set by .ci/run).

Tolerance, float32 throughout: relative 1e-5, or absolute 1e-6 near zero. Both sides sum the same products in a
different order (im2col + BLAS here, oneDNN/Eigen kernels there); each float32 sum of up to 800 terms carries a
relative rounding of a few 1e-7, and outputs near zero (ReLU, cancellations) are judged absolutely.
"""

import os

import numpy as np
import pytest
from conftest import KERAS_MISSING, import_keras, tutorial_layers

import minicnn as mc
from minicnn import layers
from minicnn.keras_compat import compare_arrays, load_keras_weights

keras, tf = import_keras()
if keras is None:
    pytest.skip(KERAS_MISSING, allow_module_level=True)

REPORT = {}  # (layer kind, quantity) -> largest relative difference measured, printed at the end


def record(kind, quantity, value):
    key = (kind, quantity)
    REPORT[key] = max(REPORT.get(key, 0.0), value)


@pytest.fixture(scope="module", autouse=True)
def print_report():
    yield
    lines = ["", "largest relative differences vs Keras " + keras.__version__ + " / TensorFlow " + tf.__version__]
    lines += [f"  {kind:<22} {quantity:<22} {value:.2e}" for (kind, quantity), value in sorted(REPORT.items())]
    print("\n".join(lines))
    path = os.environ.get("MINICNN_PARITY_REPORT")
    if path:
        import json

        with open(path, "w") as fh:
            json.dump(
                {
                    "keras": keras.__version__,
                    "tensorflow": tf.__version__,
                    "max_relative_difference": {f"{k} / {q}": v for (k, q), v in REPORT.items()},
                },
                fh,
                indent=2,
            )


# (id, minicnn layer, equivalent Keras layer, input shape)
LAYER_CASES = [
    (
        "conv valid 3x3 s1 1ch relu",
        lambda: layers.Conv2D(4, (3, 3), activation="relu"),
        lambda: keras.layers.Conv2D(4, (3, 3), activation="relu"),
        (2, 9, 9, 1),
    ),
    (
        "conv same 3x3 s2 3ch",
        lambda: layers.Conv2D(5, (3, 3), strides=2, padding="same"),
        lambda: keras.layers.Conv2D(5, (3, 3), strides=2, padding="same"),
        (2, 9, 8, 3),
    ),
    (
        "conv valid 2x3 s(2,1) tanh",
        lambda: layers.Conv2D(3, (2, 3), strides=(2, 1), activation="tanh"),
        lambda: keras.layers.Conv2D(3, (2, 3), strides=(2, 1), activation="tanh"),
        (2, 7, 5, 3),
    ),
    (
        "conv same 4x4 even kernel no bias",
        lambda: layers.Conv2D(2, (4, 4), padding="same", use_bias=False),
        lambda: keras.layers.Conv2D(2, (4, 4), padding="same", use_bias=False),
        (1, 6, 7, 2),
    ),
    # The tutorial's first layer, fed like the tutorial: pixels in [0, 1) and (see below) a positive upstream gradient.
    (
        "conv tutorial 5x5x32 (pixels)",
        lambda: layers.Conv2D(32, (5, 5), activation="relu"),
        lambda: keras.layers.Conv2D(32, (5, 5), activation="relu"),
        (4, 28, 28, 1),
    ),
    ("pool 2x2", lambda: layers.MaxPooling2D((2, 2)), lambda: keras.layers.MaxPooling2D((2, 2)), (2, 8, 8, 3)),
    (
        "pool 2x2 odd input",
        lambda: layers.MaxPooling2D((2, 2)),
        lambda: keras.layers.MaxPooling2D((2, 2)),
        (2, 7, 5, 1),
    ),
    (
        "pool 3x3 s2 same overlapping",
        lambda: layers.MaxPooling2D((3, 3), strides=2, padding="same"),
        lambda: keras.layers.MaxPooling2D((3, 3), strides=2, padding="same"),
        (2, 9, 8, 3),
    ),
    (
        "pool 3x2 s1 overlapping",
        lambda: layers.MaxPooling2D((3, 2), strides=1),
        lambda: keras.layers.MaxPooling2D((3, 2), strides=1),
        (1, 6, 7, 2),
    ),
    (
        "dense relu",
        lambda: layers.Dense(7, activation="relu"),
        lambda: keras.layers.Dense(7, activation="relu"),
        (5, 11),
    ),
    (
        "dense softmax",
        lambda: layers.Dense(6, activation="softmax"),
        lambda: keras.layers.Dense(6, activation="softmax"),
        (5, 11),
    ),
    (
        "dense sigmoid no bias",
        lambda: layers.Dense(4, activation="sigmoid", use_bias=False),
        lambda: keras.layers.Dense(4, activation="sigmoid", use_bias=False),
        (3, 8),
    ),
    ("flatten", lambda: layers.Flatten(), lambda: keras.layers.Flatten(), (2, 3, 4, 5)),
    ("activation tanh", lambda: layers.Activation("tanh"), lambda: keras.layers.Activation("tanh"), (3, 6)),
]


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_forward_and_gradients_equal_keras(case):
    name, make_ours, make_keras, shape = case
    kind = type(make_ours()).__name__
    rng = np.random.default_rng(0)
    ours = make_ours()
    ours.build(shape[1:], mc.get_backend("numpy"), np.float32, rng)
    theirs = make_keras()
    theirs.build(shape)
    theirs.set_weights([np.asarray(p) for p in ours.params.values()])
    x = rng.standard_normal(shape).astype(np.float32)
    y_shape = (shape[0],) + ours.output_shape
    upstream = rng.standard_normal(y_shape).astype(np.float32)
    if "(pixels)" in name:
        # Its kernel gradient sums 2,304 products per entry. With signed random terms those sums cancel to
        # values ~100x smaller than their terms, and float32 summed in another order then differs by up to 5e-5
        # relative (measured): cancellation, not arithmetic. Nonnegative pixels and upstream gradient keep the
        # sums cancellation-free, so 1e-5 judges the arithmetic.
        x = np.abs(x) / np.abs(x).max()
        upstream = np.abs(upstream)
    y = ours.forward(x).copy()
    dx = ours.backward(upstream.copy())
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yk = theirs(xt)
        total = tf.reduce_sum(yk * upstream)
    grads = tape.gradient(total, [xt] + list(theirs.trainable_weights))
    record(kind, "forward", compare_arrays(y, yk.numpy(), f"{name}: forward output"))
    record(kind, "input gradient", compare_arrays(dx, grads[0].numpy(), f"{name}: gradient w.r.t. the input"))
    for (key, g), gk in zip(ours.grads.items(), grads[1:]):
        record(kind, f"{key} gradient", compare_arrays(g, gk.numpy(), f"{name}: gradient w.r.t. {key}"))


def test_categorical_crossentropy_value_and_gradient_equal_keras():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (16, 10)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 16)]
    loss = mc.losses.CategoricalCrossentropy()
    p = tf.nn.softmax(logits).numpy()
    # On a plain probability tensor, Keras's TensorFlow backend normalises, clips to [1e-7, 1 - 1e-7] and takes
    # -sum(y log p): the same formula as minicnn's.
    ours = float(loss.forward(np, p, y))
    theirs = float(tf.reduce_mean(keras.losses.categorical_crossentropy(y, p)))
    record("CategoricalCrossentropy", "value", compare_arrays(ours, theirs, "loss value"))
    pt = tf.constant(p)
    with tf.GradientTape() as tape:
        tape.watch(pt)
        value = tf.reduce_mean(keras.losses.categorical_crossentropy(y, pt))
    record(
        "CategoricalCrossentropy",
        "gradient dL/dp",
        compare_arrays(loss.backward(np, p, y), tape.gradient(value, pt).numpy(), "loss gradient w.r.t. p"),
    )
    # When p comes out of a Keras softmax, the TF backend finds the logits the softmax saw (output._keras_logits)
    # and computes tf.nn.softmax_cross_entropy_with_logits from them, without clipping; its gradient w.r.t. the
    # logits is (p - y) / N, minicnn's fused gradient.
    zt = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        value = tf.reduce_mean(keras.losses.categorical_crossentropy(y, keras.activations.softmax(zt)))
    record(
        "CategoricalCrossentropy",
        "fused dL/dz",
        compare_arrays(
            loss.backward_from_softmax(p, y),
            tape.gradient(value, zt).numpy(),
            "fused softmax + cross-entropy gradient w.r.t. the logits",
        ),
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: (mc.optimizers.Adadelta(1.0, 0.95, 1e-7), keras.optimizers.Adadelta(1.0, rho=0.95, epsilon=1e-7)),
        lambda: (mc.optimizers.Adadelta(0.001, 0.95, 1e-7), keras.optimizers.Adadelta(0.001, rho=0.95, epsilon=1e-7)),
        lambda: (mc.optimizers.SGD(0.05, momentum=0.9), keras.optimizers.SGD(0.05, momentum=0.9)),
        lambda: (
            mc.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
            keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        ),
    ],
    ids=["adadelta lr 1.0", "adadelta lr 0.001", "sgd momentum", "sgd nesterov"],
)
def test_optimizer_steps_equal_keras(make):
    ours, theirs = make()
    rng = np.random.default_rng(2)
    w = [rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    variables = [keras.Variable(a.copy()) for a in w]
    for step in range(10):
        g = [rng.standard_normal(a.shape).astype(np.float32) for a in w]
        ours.apply(w, g)
        theirs.apply_gradients(zip([tf.constant(a) for a in g], variables))
        for k, (a, v) in enumerate(zip(w, variables)):
            record(
                type(ours).__name__,
                "weights after a step",
                compare_arrays(a, v.numpy(), f"{type(ours).__name__} step {step + 1}, weight {k}"),
            )


def keras_tutorial_model(dropout=(0.2, 0.5)):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(32, (5, 5), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(64, (5, 5), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Dropout(dropout[0]),
            L.Flatten(),
            L.Dense(120, activation="relu"),
            L.Dropout(dropout[1]),
            L.Dense(84, activation="relu"),
            L.Dense(10, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def mnist_sample():
    from test_datasets import _real_mnist_dir

    from minicnn.datasets import mnist
    from minicnn.train import prepare

    (x_train, y_train), (x_test, y_test) = mnist.load_data(_real_mnist_dir())
    return prepare(x_train[:640], y_train[:640]), prepare(x_test[:1000], y_test[:1000])


def test_whole_model_predictions_equal_keras(mnist_sample):
    _, (x_test, _) = mnist_sample
    keras.utils.set_random_seed(0)
    theirs = keras_tutorial_model()
    ours = mc.Sequential(tutorial_layers(), backend="numpy")
    load_keras_weights(ours, theirs)  # Keras's fresh glorot weights, as they are
    p_ours, p_theirs = ours.predict(x_test, batch_size=100), theirs.predict(x_test, batch_size=100, verbose=0)
    record("Sequential (tutorial)", "predictions", compare_arrays(p_ours, p_theirs, "tutorial model: predictions"))
    assert np.array_equal(p_ours.argmax(1), p_theirs.argmax(1))


def _train_side_by_side(x, y, steps, dtype):
    """Train Keras and minicnn from Keras's initial weights on the same batches (dropout rates 0: their random
    streams cannot match); yield per step (minicnn loss, Keras loss, minicnn model, Keras model). Keras's floatx
    is ``dtype`` for the whole run (its optimizer and loss take their dtype from it), and so is its global dtype
    policy (layers compute in the policy's dtype, which is fixed once the first layer has been made)."""
    previous, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        keras.utils.set_random_seed(1)
        theirs = keras_tutorial_model(dropout=(0.0, 0.0))
        ours = mc.Sequential(tutorial_layers(dropout=(0.0, 0.0)), backend="numpy", dtype=dtype)
        ours.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.Adadelta(1.0, 0.95, 1e-7))
        load_keras_weights(ours, theirs)
        opt = keras.optimizers.Adadelta(1.0, rho=0.95, epsilon=1e-7)
        loss_fn = keras.losses.CategoricalCrossentropy()
        x, y = x.astype(dtype), y.astype(dtype)
        for step in range(steps):
            xb, yb = x[step * 32 : (step + 1) * 32], y[step * 32 : (step + 1) * 32]
            with tf.GradientTape() as tape:
                loss_k = loss_fn(yb, theirs(xb, training=True))
            opt.apply_gradients(zip(tape.gradient(loss_k, theirs.trainable_weights), theirs.trainable_weights))
            yield ours.train_on_batch(xb, yb)[0], float(loss_k), ours, theirs
    finally:
        keras.config.set_floatx(previous)
        keras.config.set_dtype_policy(previous_policy)


def test_twenty_training_steps_follow_keras_float64(mnist_sample):
    # In float64, losses and weights agree to ~1e-14 after each of the 20 steps (measured 2.5e-15 and 8e-15);
    # 1e-10 leaves room for summation order.
    (x, y), _ = mnist_sample
    for step, (loss_ours, loss_k, ours, theirs) in enumerate(_train_side_by_side(x, y, 20, "float64"), 1):
        record(
            "Sequential float64",
            "training loss",
            compare_arrays(loss_ours, loss_k, f"float64 step {step}: loss", rtol=1e-10, atol=1e-12),
        )
        for w_ours, w_k, v in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
            record(
                "Sequential float64",
                "weights after each step",
                compare_arrays(w_ours, w_k, f"float64 step {step}: {v.path}", rtol=1e-10, atol=1e-12),
            )
    for w_ours, w_k, v in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
        record(
            "Sequential float64",
            "weights after 20 steps",
            compare_arrays(w_ours, w_k, f"float64, after 20 steps: {v.path}", rtol=1e-10, atol=1e-12),
        )


def test_training_steps_follow_keras_float32(mnist_sample):
    # In float32 the two trajectories agree to ~1e-7 (loss) and ~1e-6 (weights) until a rounding difference tips
    # one discrete choice (a ReLU or max-pool decision in the first conv): measured at step 15 with these
    # batches, after which the first kernel differs by 6e-4 and the runs drift apart, as any two float32
    # implementations do. The float64 test above follows all 20 steps. Here: 12 steps at the 1e-4.
    (x, y), _ = mnist_sample
    for step, (loss_ours, loss_k, ours, theirs) in enumerate(_train_side_by_side(x, y, 12, "float32"), 1):  # noqa: B007 (used after the loop)
        record(
            "Sequential float32",
            "training loss",
            compare_arrays(loss_ours, loss_k, f"float32 step {step}: loss", rtol=1e-4),
        )
    for w_ours, w_k, v in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
        record(
            "Sequential float32",
            "weights after 12 steps",
            compare_arrays(w_ours, w_k, f"float32, after 12 steps: {v.path}", rtol=1e-4, atol=1e-5),
        )


def test_weights_file_from_keras_loads(tmp_path):
    keras.utils.set_random_seed(2)
    theirs = keras_tutorial_model()
    path = str(tmp_path / "tutorial.weights.h5")
    theirs.save_weights(path)
    ours = mc.Sequential(tutorial_layers(), backend="numpy")
    load_keras_weights(ours, path)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_architecture_mismatch_names_the_first_differing_layer():
    L = keras.layers
    theirs = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(32, (5, 5), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(48, (5, 5), activation="relu"),
        ]
    )
    ours = mc.Sequential(tutorial_layers()[:3], backend="numpy")
    with pytest.raises(
        ValueError,
        match=r"layer 2 \(minicnn 'conv2d_1' Conv2D, Keras 'conv2d_\d+' Conv2D\): "
        r"filters is 64 in minicnn, 48 in Keras",
    ):
        load_keras_weights(ours, theirs)


def test_parity_failure_message_names_layer_quantity_difference_and_place():
    with pytest.raises(
        AssertionError,
        match=r"conv2d: gradient w.r.t. kernel: largest relative difference 0.1 "
        r"\(absolute 0.2\) at index \(1, 0\)",
    ):
        compare_arrays(
            np.array([[1.0, 1.0], [2.2, 1.0]]), np.array([[1.0, 1.0], [2.0, 1.0]]), "conv2d: gradient w.r.t. kernel"
        )
