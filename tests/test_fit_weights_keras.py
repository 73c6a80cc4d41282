"""fit's Keras arguments against Keras itself on a small Dense model with the same initial weights and plain SGD:
sample_weight, class_weight, validation_data with weights, validation_split with weights, initial_epoch, batch logs,
evaluate(sample_weight=, return_dict=). Losses and weights agree within float32 rounding (rtol 2e-5: the two
frameworks sum in different orders)."""

import numpy as np
import pytest
from conftest import KERAS_MISSING, import_keras

import minicnn as mc
from minicnn import callbacks as cbs
from minicnn import layers

RTOL = 2e-5


@pytest.fixture(scope="module")
def keras():
    keras, _ = import_keras()
    if keras is None:
        pytest.skip(KERAS_MISSING)
    return keras


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)
    return x, np.eye(3, dtype=np.float32)[labels], rng.uniform(0.0, 3.0, n).astype(np.float32)


def pair(keras, seed=0):
    """A minicnn model and a Keras model with the same weights, both SGD(0.1) on categorical cross-entropy."""
    ours = mc.Sequential(
        [layers.Dense(5, activation="relu", input_shape=(6,)), layers.Dense(3, activation="softmax")],
        seed=seed,
        backend="numpy",
    )
    ours.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.SGD(0.1), metrics=["accuracy"])
    theirs = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )
    theirs.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"])
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def assert_same_weights(ours, theirs):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-6)


def assert_same_history(h_ours, h_theirs, keys):
    for key in keys:
        np.testing.assert_allclose(h_ours.history[key], h_theirs.history[key], rtol=RTOL, err_msg=key)


@pytest.mark.parametrize("weighting", ["sample_weight", "class_weight"])
def test_weighted_training_matches_keras(keras, weighting):
    x, y, w = data()
    kwargs = {"sample_weight": w} if weighting == "sample_weight" else {"class_weight": {0: 0.2, 2: 3.0}}
    ours, theirs = pair(keras)
    h_ours = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, **kwargs)
    h_theirs = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, **kwargs)
    assert_same_history(h_ours, h_theirs, ["loss", "accuracy"])
    assert_same_weights(ours, theirs)
    plain, _ = pair(keras)
    plain.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert not np.allclose(plain.get_weights()[0], ours.get_weights()[0], rtol=1e-3)  # the weights mattered


def test_one_weighted_step_matches_keras(keras):
    x, y, w = data(10, seed=3)
    ours, theirs = pair(keras, seed=2)
    loss_ours = ours.train_on_batch(x, y, sample_weight=w)[0]
    loss_theirs = float(theirs.train_on_batch(x, y, sample_weight=w)[0])
    assert loss_ours == pytest.approx(loss_theirs, rel=RTOL)
    assert_same_weights(ours, theirs)


def test_weighted_validation_matches_keras(keras):
    x, y, w = data(48, seed=1)
    xv, yv, wv = data(16, seed=2)
    for kwargs in (
        {"validation_data": (xv, yv, wv)},
        {"validation_split": 0.25, "sample_weight": w},
        {"validation_split": 0.25, "class_weight": {1: 4.0}},
    ):
        ours, theirs = pair(keras)
        h_ours = ours.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, **kwargs)
        h_theirs = theirs.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, **kwargs)
        assert_same_history(h_ours, h_theirs, ["loss", "val_loss", "val_accuracy"])
        assert_same_weights(ours, theirs)


def test_evaluate_with_weights_and_return_dict_matches_keras(keras):
    x, y, w = data(30, seed=4)
    ours, theirs = pair(keras)
    got = ours.evaluate(x, y, batch_size=8, verbose=0, sample_weight=w, return_dict=True)
    expected = theirs.evaluate(x, y, batch_size=8, verbose=0, sample_weight=w, return_dict=True)
    assert set(got) == set(expected) == {"loss", "accuracy"}
    for key in got:
        assert got[key] == pytest.approx(expected[key], rel=RTOL)
    assert got["loss"] != pytest.approx(ours.evaluate(x, y, verbose=0)[0], rel=1e-3)
    np.testing.assert_allclose(ours.predict_on_batch(x), theirs.predict_on_batch(x), rtol=RTOL, atol=1e-7)


def test_initial_epoch_and_batch_logs_match_keras(keras):
    x, y, _ = data(20, seed=5)
    ours, theirs = pair(keras)
    seen_ours, seen_theirs = [], []
    h_ours = ours.fit(
        x,
        y,
        batch_size=8,
        epochs=4,
        initial_epoch=2,
        shuffle=False,
        verbose=0,
        callbacks=[cbs.LambdaCallback(on_train_batch_end=lambda b, logs: seen_ours.append((b, logs)))],
    )
    h_theirs = theirs.fit(
        x,
        y,
        batch_size=8,
        epochs=4,
        initial_epoch=2,
        shuffle=False,
        verbose=0,
        callbacks=[
            keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen_theirs.append((b, dict(logs))))
        ],
    )
    assert h_ours.epoch == h_theirs.epoch == [2, 3]
    assert [b for b, _ in seen_ours] == [b for b, _ in seen_theirs] == [0, 1, 2, 0, 1, 2]
    for (_, a), (_, b) in zip(seen_ours, seen_theirs):
        assert set(a) == set(b) == {"loss", "accuracy"}
        assert a["loss"] == pytest.approx(b["loss"], rel=RTOL) and a["accuracy"] == pytest.approx(b["accuracy"])
    assert_same_weights(ours, theirs)


def test_get_layer_by_name_and_index_as_keras_does(keras):
    ours, theirs = pair(keras)
    for i in (0, 1, -1):
        assert ours.get_layer(index=i) is ours.layers[i] and theirs.get_layer(index=i) is theirs.layers[i]
        assert theirs.get_layer(theirs.layers[i].name) is theirs.layers[i]
    assert ours.get_layer("dense_1") is ours.layers[1]
    for kwargs, message in [
        ({"name": "conv"}, "no layer named 'conv'.*dense, dense_1"),
        ({"index": 2}, "out of range"),
        ({}, "name or an index"),
        ({"name": "dense", "index": 0}, "name or an index"),
    ]:
        with pytest.raises(ValueError, match=message):
            ours.get_layer(**kwargs)


def test_bad_weights_are_refused_with_clear_messages():
    ours = mc.Sequential([layers.Dense(3, activation="softmax", input_shape=(6,))], seed=0, backend="numpy")
    ours.compile(optimizer=mc.optimizers.SGD(0.1))
    x, y, w = data(12)
    for kwargs, message in [
        ({"sample_weight": w[:5]}, r"shape \(12,\)"),
        ({"sample_weight": -w}, ">= 0"),
        ({"sample_weight": w, "class_weight": {0: 1.0}}, "not both"),
        ({"class_weight": [1.0, 2.0]}, "dict"),
        ({"class_weight": {"a": 1.0}}, "class indices"),
        ({"validation_data": (x,)}, "tuple"),
        ({"initial_epoch": -1}, "initial_epoch"),
    ]:
        with pytest.raises((ValueError, TypeError), match=message):
            ours.fit(x, y, verbose=0, **kwargs)
