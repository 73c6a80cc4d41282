"""Whole-model files in Keras 3's format, both ways: minicnn's ``model.save`` opened by ``keras.models.load_model``,
Keras-made ``.keras`` files opened by ``minicnn.models.load_model``, and ``to_json`` / ``model_from_json``.

Predictions are compared with relative tolerance 1e-5 (absolute 1e-6 near zero): float32 on both sides, the same
weights, sums taken in another order (~1e-7 expected). Weights moved through a file must be bit for bit equal.
The Keras tests skip without Keras unless MINICNN_REQUIRE_KERAS=1 (CI).
"""

import json
import sys
import warnings

import numpy as np
import pytest
from conftest import KERAS_MISSING, import_keras, tutorial_layers
from optional_modules import need

import minicnn as mc
from minicnn import layers as mlayers
from minicnn.keras_compat import check_architecture, compare_arrays
from minicnn.models import ModelFileError, load_model, model_from_json

keras, tf = import_keras()
needs_keras = pytest.mark.skipif(keras is None, reason=KERAS_MISSING)
h5py = need("h5py", "keras-files")


def mixed_layers(L, first_kwargs=None):
    """Every layer kind minicnn reads, in one Sequential (Keras's or minicnn's ``layers`` module as ``L``):
    12x12x2 -> (3,)."""
    return [
        L.Conv2D(6, 3, strides=2, padding="same", use_bias=False, **(first_kwargs or {})),
        L.BatchNormalization(),
        L.Activation("relu"),
        L.ZeroPadding2D(((1, 0), (2, 1))),
        L.MaxPooling2D(2, strides=1, padding="same"),
        L.AveragePooling2D(3, strides=2, padding="same"),
        L.Conv2D(
            4,
            2,
            activation="sigmoid",
            kernel_regularizer=mc.regularizers.L2(0.01) if L is mlayers else keras.regularizers.L2(0.01),
        ),
        L.Dropout(0.25, seed=3),
        L.Reshape((4, 3, 4)),
        L.GlobalAveragePooling2D(keepdims=True),
        L.GlobalMaxPooling2D(),
        L.Dense(8, activation="tanh"),
        L.BatchNormalization(momentum=0.9, epsilon=0.01),
        L.Reshape((2, 4)),
        L.Flatten(),
        L.Dense(3, activation="softmax"),
    ]


def mixed_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 12, 12, 2), dtype=np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


def trained_minicnn_mixed():
    """The mixed model after a few Adam steps (the moving statistics away from 0 and 1), one layer frozen."""
    model = mc.Sequential(mixed_layers(mlayers, {"input_shape": (12, 12, 2)}), seed=3, backend="numpy")
    model.layers[11].trainable = False
    model.compile(optimizer=mc.optimizers.Adam(0.01), metrics=["accuracy"])
    x, y = mixed_data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return model


@needs_keras
def test_minicnn_file_opens_in_keras_with_the_same_predictions(tmp_path):
    ours = trained_minicnn_mixed()
    assert not np.allclose(mc.get_backend("numpy").to_numpy(ours.layers[1].params["moving_mean"]), 0)
    ours.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the optimizer's state is there: nothing skipped
        theirs = keras.models.load_model(tmp_path / "m.keras")
    check_architecture(ours, theirs)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert [layer.trainable for layer in theirs.layers] == [layer.trainable for layer in ours.layers]
    x, _ = mixed_data(64, seed=1)
    compare_arrays(ours.predict(x), theirs.predict(x, verbose=0), "minicnn file in Keras: predictions")
    assert type(theirs.optimizer).__name__ == "Adam"
    assert float(theirs.optimizer.learning_rate) == pytest.approx(0.01)
    assert theirs.loss == "categorical_crossentropy"


@needs_keras
def test_keras_file_opens_in_minicnn_with_the_same_predictions(tmp_path):
    keras.utils.set_random_seed(5)
    theirs = keras.Sequential([keras.Input((12, 12, 2)), *mixed_layers(keras.layers)])
    theirs.layers[11].trainable = False
    theirs.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(0.003), metrics=["accuracy"])
    x, y = mixed_data()
    theirs.fit(x, y, batch_size=8, epochs=2, verbose=0)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras", backend="numpy")
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    assert [layer.trainable for layer in ours.layers] == [layer.trainable for layer in theirs.layers]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert np.array_equal(a, b)
    assert not np.allclose(ours.layers[12].params["moving_variance"], 1)  # Keras's trained moving statistics
    x_new, _ = mixed_data(64, seed=2)
    compare_arrays(ours.predict(x_new), theirs.predict(x_new, verbose=0), "Keras file in minicnn: predictions")
    assert isinstance(ours.optimizer, mc.optimizers.RMSprop) and ours.optimizer.learning_rate == pytest.approx(0.003)
    assert ours.layers[6].kernel_regularizer.l2 == pytest.approx(0.01)
    ours.fit(x, y, epochs=1, verbose=0)  # it trains on (with its restored settings; the optimizer starts afresh)


@needs_keras
@pytest.mark.parametrize(
    "optimizer",
    [
        mc.optimizers.Adadelta(),
        mc.optimizers.Adam(0.01),
        mc.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
        mc.optimizers.SGD(0.1, momentum=0.9),
    ],
    ids=lambda o: type(o).__name__,
)
def test_keras_continues_training_where_minicnn_stopped(tmp_path, optimizer):
    """The optimizer's state travels too: after two minicnn steps, Keras holds the same slots and step count, and
    one more step on the same batch gives both the same weights (one float32 step each: relative 1e-4, 1e-5 near 0,
    where a fresh Keras optimizer would be off by the whole of its first update)."""
    ours = small_model(optimizer)
    x, y = mixed_data(24, seed=6)
    ours.train_on_batch(x[:8], y[:8])
    ours.train_on_batch(x[8:16], y[8:16])
    ours.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "Skipping variable loading for optimizer"
        theirs = keras.models.load_model(tmp_path / "m.keras")
    assert int(theirs.optimizer.iterations) == 2
    ours.train_on_batch(x[16:], y[16:])
    theirs.train_on_batch(x[16:], y[16:])
    for i, (a, b) in enumerate(zip(ours.get_weights(), theirs.get_weights())):
        compare_arrays(a, b, f"{type(optimizer).__name__}: weight {i} after a step in each", rtol=1e-4, atol=1e-5)


@needs_keras
def test_a_model_never_trained_carries_a_fresh_optimizer_state(tmp_path):
    ours = mc.Sequential([mlayers.Dense(3, activation="softmax", input_shape=(4,))], seed=0)
    ours.compile(optimizer=mc.optimizers.Adam(0.01))
    ours.save(tmp_path / "fresh.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        theirs = keras.models.load_model(tmp_path / "fresh.keras")
    assert int(theirs.optimizer.iterations) == 0
    assert all(not np.any(v.numpy()) for v in theirs.optimizer.variables[2:])


@needs_keras
def test_minicnn_continues_training_where_keras_stopped(tmp_path):
    """Keras's optimizer state (Adam's moments, its step count) is read back: one more step in each gives the same
    weights (one float32 step each: relative 1e-4, 1e-5 near 0)."""
    keras.utils.set_random_seed(3)
    L = keras.layers
    theirs = keras.Sequential(
        [
            keras.Input((12, 12, 2)),
            L.Conv2D(4, 3, activation="relu"),
            L.BatchNormalization(),
            L.Flatten(),
            L.Dense(3, activation="softmax"),
        ]
    )
    theirs.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"])
    x, y = mixed_data(24, seed=6)
    theirs.train_on_batch(x[:8], y[:8])
    theirs.train_on_batch(x[8:16], y[8:16])
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras", backend="numpy")
    assert ours.optimizer.iterations == 2 and np.any(ours.optimizer.momentums[0])
    ours.train_on_batch(x[16:], y[16:])
    theirs.train_on_batch(x[16:], y[16:])
    for i, (a, b) in enumerate(zip(ours.get_weights(), theirs.get_weights())):
        compare_arrays(a, b, f"weight {i} after a step in each", rtol=1e-4, atol=1e-5)


def test_round_trip_keeps_weights_names_flags_and_compile_settings(tmp_path):
    ours = trained_minicnn_mixed()
    ours.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")
    assert back.to_json() == ours.to_json()
    for a, b in zip(ours.get_weights(), back.get_weights()):
        assert np.array_equal(a, b)
    assert back.optimizer.get_config() == ours.optimizer.get_config() and back.metrics == ["accuracy"]
    assert back.loss.name == "categorical_crossentropy"
    x, _ = mixed_data(16, seed=4)
    assert np.array_equal(back.predict(x), ours.predict(x))
    uncompiled = load_model(tmp_path / "m.keras", compile=False)
    assert uncompiled.optimizer is None


def small_model(optimizer, seed=2):
    """A model without dropout (so two copies train alike): Conv2D, BatchNormalization, Flatten, Dense."""
    model = mc.Sequential(
        [
            mlayers.Conv2D(4, 3, activation="relu", input_shape=(12, 12, 2)),
            mlayers.BatchNormalization(),
            mlayers.Flatten(),
            mlayers.Dense(3, activation="softmax"),
        ],
        seed=seed,
        backend="numpy",
    )
    model.compile(optimizer=optimizer, metrics=["accuracy"])
    return model


@pytest.mark.parametrize(
    "optimizer",
    [
        mc.optimizers.Adadelta(),
        mc.optimizers.Adam(0.01, amsgrad=True),
        mc.optimizers.AdamW(0.01),
        mc.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
        mc.optimizers.SGD(0.1, momentum=0.9),
        mc.optimizers.SGD(0.1),
    ],
    ids=lambda o: f"{type(o).__name__}{o.get_config()}",
)
def test_a_reopened_model_continues_training_bit_for_bit(tmp_path, optimizer):
    ours = small_model(optimizer)
    x, y = mixed_data(24, seed=6)
    ours.train_on_batch(x[:8], y[:8])
    ours.train_on_batch(x[8:16], y[8:16])
    ours.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras", backend="numpy")
    assert back.optimizer.iterations == 2
    ours.train_on_batch(x[16:], y[16:])
    back.train_on_batch(x[16:], y[16:])
    for a, b in zip(ours.get_weights(), back.get_weights()):
        assert np.array_equal(a, b)


def test_float64_model_round_trips(tmp_path):
    ours = mc.Sequential([mlayers.Dense(3, input_shape=(4,))], dtype="float64", seed=0)
    ours.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")
    assert back.dtype == np.float64 and np.array_equal(back.get_weights()[0], ours.get_weights()[0])


def test_to_json_round_trip():
    ours = trained_minicnn_mixed()
    text = ours.to_json()
    again = model_from_json(text, seed=1)
    assert again.to_json() == text and again.optimizer is None
    assert again.summary(print_fn=None) == ours.summary(print_fn=None)
    assert json.loads(ours.to_json(indent=2)) == json.loads(text)


@needs_keras
def test_json_crosses_to_keras_and_back():
    ours = trained_minicnn_mixed()
    theirs = keras.models.model_from_json(ours.to_json())
    check_architecture(ours, theirs)
    keras.utils.set_random_seed(2)
    k = keras.Sequential([keras.Input((12, 12, 2)), *mixed_layers(keras.layers)])
    again = model_from_json(k.to_json())
    check_architecture(again, k)
    again.set_weights(k.get_weights())
    x, _ = mixed_data(8, seed=5)
    compare_arrays(again.predict(x), k.predict(x, verbose=0), "model_from_json(Keras's JSON): predictions")


def test_save_needs_h5py_and_says_which_extra(tmp_path, monkeypatch):
    model = mc.Sequential([mlayers.Dense(2, input_shape=(3,))], seed=0)
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"minicnn\[keras-files\]"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_save_refuses_other_extensions_and_unbuilt_models(tmp_path):
    with pytest.raises(ValueError, match=r"ends in \.keras"):
        mc.Sequential([mlayers.Dense(2, input_shape=(3,))]).save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="not built"):
        mc.Sequential([mlayers.Dense(2)]).save(tmp_path / "m.keras")


@needs_keras
def test_keras_lambda_layer_is_refused_by_name(tmp_path):
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(2)])
    theirs.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError, match=r"lambda\.keras.*layer 'Lambda' is not supported"):
        load_model(tmp_path / "lambda.keras")


@needs_keras
def test_keras_tutorial_model_evaluates_to_the_same_accuracy_in_minicnn(tmp_path):
    from test_datasets import _real_mnist_dir

    from minicnn.datasets import mnist
    from minicnn.train import prepare

    (x_train, y_train), (x_test, y_test) = mnist.load_data(_real_mnist_dir())
    x, y = prepare(x_train[:512], y_train[:512])
    x_test, y_test = prepare(x_test, y_test)
    keras.utils.set_random_seed(0)
    L = keras.layers
    theirs = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(32, (5, 5), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(64, (5, 5), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Dropout(0.2),
            L.Flatten(),
            L.Dense(120, activation="relu"),
            L.Dropout(0.5),
            L.Dense(84, activation="relu"),
            L.Dense(10, activation="softmax"),
        ]
    )
    theirs.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adadelta(1.0), metrics=["accuracy"])
    theirs.fit(x, y, batch_size=128, epochs=1, verbose=0)
    theirs.save(tmp_path / "tutorial.keras")
    ours = load_model(tmp_path / "tutorial.keras")
    assert ours.count_params() == 186_110 and [type(a).__name__ for a in ours.layers] == [
        type(b).__name__ for b in tutorial_layers()
    ]
    their_loss, their_acc = theirs.evaluate(x_test, y_test, batch_size=500, verbose=0)
    our_loss, our_acc = ours.evaluate(x_test, y_test, batch_size=500, verbose=0)
    assert our_acc == pytest.approx(their_acc, abs=1e-6)  # the same count of right answers out of 10,000
    assert our_loss == pytest.approx(their_loss, rel=1e-4)
    p_ours, p_theirs = ours.predict(x_test, batch_size=500), theirs.predict(x_test, batch_size=500, verbose=0)
    compare_arrays(p_ours, p_theirs, "Keras tutorial model in minicnn: test predictions")


def test_the_guide_example_runs(tmp_path, monkeypatch, capsys):
    import os
    import re

    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "model_files.md")) as fh:
        (block,) = re.findall(r"```python\n(.*?)```", fh.read(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/model_files.md", "exec"), {})
    assert re.fullmatch(r"tiny\.keras: the file holds [\d,]+ bytes, over the limit of 1,000\n", capsys.readouterr().out)
