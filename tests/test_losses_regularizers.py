"""sparse_categorical_crossentropy, from_logits=True, and weight regularizers: against Keras 3 (TensorFlow backend)
where it has the same computation, against central differences in float64, and their argument checks.

Tolerances: float32 relative 1e-5 (absolute 1e-6 near zero) against Keras (sums in another order); float64
gradient checks at check_model's default 1e-6 (and 1e-7 for the penalty's directional check).
"""

import numpy as np
import pytest
from conftest import KERAS_MISSING, import_keras

import minicnn as mc
from minicnn import layers, losses, regularizers
from minicnn.gradcheck import check_model

keras, tf = import_keras()

needs_keras = pytest.mark.skipif(keras is None, reason=KERAS_MISSING)
F32 = dict(rtol=1e-5, atol=1e-6)


def softmax_rows(rng, n, k):
    z = rng.standard_normal((n, k))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def keras_value_and_grad(loss_fn, y, out):
    t = tf.constant(out)
    with tf.GradientTape() as tape:
        tape.watch(t)
        value = loss_fn(tf.constant(y), t)
    return float(value), tape.gradient(value, t).numpy()


# --- losses against Keras ----------------------------------------------------------------------------------------
@needs_keras
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_shape", ["(N,)", "(N, 1)"])
def test_sparse_crossentropy_value_and_gradient_match_keras(from_logits, label_shape):
    rng = np.random.default_rng(0)
    n, k = 6, 5
    out = (rng.standard_normal((n, k)) * 3).astype(np.float32) if from_logits else softmax_rows(rng, n, k)
    labels = rng.integers(0, k, n)
    y = labels if label_shape == "(N,)" else labels.reshape(n, 1)
    ours = (
        losses.get("sparse_categorical_crossentropy")
        if not from_logits
        else losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    value, grad = keras_value_and_grad(keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits), y, out)
    np.testing.assert_allclose(float(ours.forward(np, out, y)), value, **F32)
    np.testing.assert_allclose(ours.backward(np, out, y), grad, **F32)
    expected_acc = np.mean(out.argmax(axis=1) == labels)
    assert float(ours.accuracy(np, out, y)) == expected_acc


@needs_keras
def test_categorical_crossentropy_from_logits_matches_keras():
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((7, 4)) * 4).astype(np.float32)
    z[0] = [60.0, -40.0, 0.0, 1.0]  # a row whose softmax underflows: the stable log-softmax keeps it finite
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 7)]
    ours = losses.CategoricalCrossentropy(from_logits=True)
    value, grad = keras_value_and_grad(keras.losses.CategoricalCrossentropy(from_logits=True), y, z)
    assert np.isfinite(float(ours.forward(np, z, y)))
    np.testing.assert_allclose(float(ours.forward(np, z, y)), value, **F32)
    np.testing.assert_allclose(ours.backward(np, z, y), grad, **F32)


def test_categorical_crossentropy_on_probabilities_is_unchanged():
    """The default (probabilities) path is the earlier one: the clipped, normalised formula of numpy_ref."""
    rng = np.random.default_rng(2)
    p, y = softmax_rows(rng, 5, 3), np.eye(3, dtype=np.float32)[[0, 2, 1, 1, 0]]
    loss = losses.CategoricalCrossentropy()
    assert loss.fuses_softmax and not loss.from_logits
    q = np.clip(p / p.sum(axis=1, keepdims=True), 1e-7, 1 - 1e-7)
    assert loss.forward(np, p, y) == (-(y * np.log(q)).sum(axis=-1)).mean()


# --- in a model ----------------------------------------------------------------------------------------------------
def small_model(last_activation, dtype="float32", backend="numpy", seed=0, **dense_kwargs):
    return mc.Sequential(
        [
            layers.Conv2D(3, (3, 3), activation="tanh", input_shape=(6, 6, 2)),
            layers.Flatten(),
            layers.Dense(4, activation=last_activation, **dense_kwargs),
        ],
        dtype=dtype,
        seed=seed,
        backend=backend,
    )


def data(n=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6, 6, 2)).astype(np.float32), rng.integers(0, k, n)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_sparse_loss_uses_the_fused_softmax_gradient_and_equals_one_hot_training(backend):
    """softmax output + sparse CE: the step starts below the softmax with (p - onehot(y))/N, so training with
    class indices gives bitwise the weights, losses and accuracies of training with their one-hot rows."""
    x, labels = data()
    sparse, dense = small_model("softmax", backend=backend), small_model("softmax", backend=backend)
    sparse.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    dense.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    assert sparse.through_softmax()
    h1 = sparse.fit(x, labels, batch_size=5, epochs=2, verbose=0)
    h2 = dense.fit(x, mc.to_categorical(labels, 4), batch_size=5, epochs=2, verbose=0)
    assert h1.history["loss"] == h2.history["loss"] and h1.history["accuracy"] == h2.history["accuracy"]
    for a, b in zip(sparse.get_weights(), dense.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert sparse.evaluate(x, labels.reshape(-1, 1), verbose=0) == dense.evaluate(
        x, mc.to_categorical(labels, 4), verbose=0
    )


@pytest.mark.parametrize("loss", ["sparse", "sparse_logits", "categorical_logits"])
def test_a_model_trains_and_its_gradients_check_in_float64(loss):
    x, labels = data(n=16)
    targets = labels if loss.startswith("sparse") else mc.to_categorical(labels, 4)
    from_logits = loss.endswith("logits")
    cls = losses.SparseCategoricalCrossentropy if loss.startswith("sparse") else losses.CategoricalCrossentropy
    model = small_model(None if from_logits else "softmax")
    model.compile(loss=cls(from_logits=from_logits), optimizer=mc.optimizers.Adam(0.01), metrics=["accuracy"])
    assert model.through_softmax() is (not from_logits)
    history = model.fit(x, targets, batch_size=8, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    checked = small_model(None if from_logits else "softmax", dtype="float64")
    checked.compile(loss=cls(from_logits=from_logits))
    check_model(checked, x[:5].astype(np.float64), targets[:5]).assert_ok()


# --- regularizers --------------------------------------------------------------------------------------------------
def regularized(dtype="float32", backend="numpy", frozen=False):
    model = mc.Sequential(
        [
            layers.Conv2D(
                3,
                (3, 3),
                activation="relu",
                input_shape=(6, 6, 2),
                kernel_regularizer=regularizers.l1(0.01),
                bias_regularizer=regularizers.l2(0.02),
            ),
            layers.Flatten(),
            layers.Dense(
                4, activation="softmax", kernel_regularizer=regularizers.l1_l2(l1=0.01, l2=0.02), bias_regularizer="l1"
            ),
        ],
        dtype=dtype,
        seed=1,
        backend=backend,
    )
    rng = np.random.default_rng(5)
    model.set_weights([w + 0.1 * rng.standard_normal(w.shape) for w in model.get_weights()])  # nonzero biases
    model.layers[0].trainable = not frozen
    return model


def keras_twin(model):
    k = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(
                3,
                3,
                activation="relu",
                kernel_regularizer=keras.regularizers.l1(0.01),
                bias_regularizer=keras.regularizers.l2(0.02),
            ),
            keras.layers.Flatten(),
            keras.layers.Dense(
                4,
                activation="softmax",
                kernel_regularizer=keras.regularizers.L1L2(l1=0.01, l2=0.02),
                bias_regularizer="l1",
            ),
        ]
    )
    k.set_weights(model.get_weights())
    return k


@needs_keras
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_regularized_loss_and_gradients_match_keras(backend):
    model = regularized(backend=backend)
    x, labels = data()
    y = mc.to_categorical(labels, 4)
    theirs = keras_twin(model)
    with tf.GradientTape() as tape:
        total = keras.losses.CategoricalCrossentropy()(y, theirs(x)) + tf.add_n(theirs.losses)
    keras_grads = [g.numpy() for g in tape.gradient(total, theirs.trainable_weights)]
    model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.SGD(0.1))
    loss, grads = model.compute_gradients(x, y)
    np.testing.assert_allclose(loss, float(total), **F32)
    for ours, expected in zip(grads, keras_grads):
        np.testing.assert_allclose(ours, expected, **F32)
    penalty = float(model.regularization_loss())
    assert penalty == pytest.approx(float(tf.add_n(theirs.losses)), rel=1e-5) and penalty > 0.05


@needs_keras
def test_fit_and_evaluate_report_the_penalised_loss_as_keras_does():
    """Keras's fit and evaluate report data loss + penalties (measured before the update, for fit); the weights
    after one SGD step match too."""
    model = regularized()
    x, labels = data()
    y = mc.to_categorical(labels, 4)
    theirs = keras_twin(model)
    theirs.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1))
    model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.SGD(0.1))
    expected_eval = theirs.evaluate(x, y, batch_size=5, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=5, verbose=0)[0], expected_eval, **F32)
    kh = theirs.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
    h = model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(h.history["loss"][0], kh.history["loss"][0], **F32)
    for ours, expected in zip(model.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(ours, expected, **F32)


def test_penalty_gradient_matches_central_differences_in_float64():
    """d(data loss + penalties)/dW along a random direction, against a central difference (relative 1e-7)."""
    model = regularized(dtype="float64")
    model.compile(loss="categorical_crossentropy")
    x, labels = data(n=5)
    x = x.astype(np.float64) * 0.5
    y = mc.to_categorical(labels, 4).astype(np.float64)
    loss, grads = model.compute_gradients(x, y)
    rng = np.random.default_rng(3)
    directions = [rng.standard_normal(w.shape) for w in model.get_weights()]
    base = model.get_weights()

    def total(step):
        model.set_weights([w + step * d for w, d in zip(base, directions)])
        return model.test_on_batch(x, y)[0]

    h = 1e-6
    numeric = (total(h) - total(-h)) / (2 * h)
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, directions))
    assert abs(numeric - analytic) / (abs(numeric) + abs(analytic)) < 1e-7
    model.set_weights(base)
    assert model.test_on_batch(x, y)[0] == pytest.approx(loss, rel=1e-14)


def test_no_regularizers_no_arithmetic_and_frozen_layers_add_nothing():
    model = small_model("softmax")
    marker = object()
    assert model.regularized_layers() == [] and model.regularization_loss() is None
    assert model.add_penalties(marker) == (marker, [])  # the loss object passes through untouched
    frozen = regularized(frozen=True)
    assert [layer.name for layer in frozen.regularized_layers()] == ["dense"]  # Keras: trainable weights only


@needs_keras
def test_regularizer_defaults_and_values_match_keras():
    w = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    pairs = [
        (regularizers.l1(), keras.regularizers.l1()),
        (regularizers.l2(), keras.regularizers.l2()),
        (regularizers.l1_l2(), keras.regularizers.l1_l2()),
        (regularizers.L1L2(l1=0.3, l2=0.2), keras.regularizers.L1L2(l1=0.3, l2=0.2)),
        (regularizers.get("l1l2"), keras.regularizers.get("l1l2")),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(float(ours(w)), float(theirs(w)), rtol=1e-6)
        assert ours.get_config() == pytest.approx(theirs.get_config(), rel=1e-7)
    assert regularizers.l1().l1 == regularizers.l2().l2 == 0.01
    assert regularizers.l1_l2().get_config() == {"l1": 0.0, "l2": 0.0}  # Keras 3's defaults for L1L2
    assert layers.Dense(2, kernel_regularizer="l2").get_config()["kernel_regularizer"] == {
        "class_name": "L2",
        "config": {"l2": 0.01},
    }


# --- bad arguments -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: regularizers.l1(-0.1), ValueError, "l1"),
        (lambda: regularizers.l2(float("nan")), ValueError, "l2"),
        (lambda: regularizers.L1L2(l1="a"), ValueError, "l1"),
        (lambda: regularizers.get("l3"), ValueError, "unknown regularizer"),
        (lambda: regularizers.get(0.1), TypeError, "regularizer"),
        (lambda: layers.Dense(2, bias_regularizer="l4"), ValueError, "l4"),
        (lambda: layers.Conv2D(2, 3, kernel_regularizer=5), TypeError, "regularizer"),
        (lambda: losses.CategoricalCrossentropy(from_logits="yes"), TypeError, "from_logits"),
    ],
)
def test_bad_arguments_are_named(make, error, words):
    with pytest.raises(error, match=words):
        make()


@pytest.mark.parametrize(
    "y, error, words",
    [
        (np.array([0, 1, 4, 2]), ValueError, r"y\[2\] = 4 is out of range for 4 classes"),
        (np.array([0, -1, 3, 2]), ValueError, "out of range"),
        (np.array([0.0, 1.5, 3.0, 2.0]), ValueError, r"integer class indices.*y\[1\]"),
        (np.array([[0, 1], [1, 0], [2, 2], [3, 3]]), ValueError, r"shape \(4, 2\).*\(N,\) or \(N, 1\)"),
        (np.eye(4, dtype=np.int64), ValueError, "one-hot rows"),
        (np.array([0, 1, 2]), ValueError, "4 samples but y has 3"),
        (np.array(["0", "1", "2", "3"]), TypeError, "integer class indices"),
    ],
)
def test_sparse_targets_are_checked(y, error, words):
    model = small_model("softmax")
    model.compile(loss="sparse_categorical_crossentropy")
    x, _ = data(n=4)
    with pytest.raises(error, match=words):
        model.train_on_batch(x, y)


def test_float_labels_holding_whole_numbers_are_accepted():
    model = small_model("softmax")
    model.compile(loss="sparse_categorical_crossentropy")
    x, labels = data(n=4)
    assert model.test_on_batch(x, labels.astype(np.float32)) == model.test_on_batch(x, labels)


def test_check_model_differentiates_the_penalties_too():
    # the numerical side must include the penalties that forward_backward's gradients include
    from minicnn.gradcheck import check_model

    model = mc.Sequential(
        [
            mc.layers.Dense(
                4,
                activation="tanh",
                input_shape=(3,),
                kernel_regularizer=mc.regularizers.l2(0.1),
                bias_regularizer=mc.regularizers.l1(0.05),
            ),
            mc.layers.Dense(2, activation="softmax"),
        ],
        dtype="float64",
        seed=0,
        backend="numpy",
    )
    model.compile()
    x = np.random.default_rng(0).normal(size=(5, 3))
    check_model(model, x, np.eye(2)[[0, 1, 0, 1, 1]], max_checks=None).assert_ok()
