"""fit / evaluate / predict, weights files and plots, with Keras's semantics."""

import json

import numpy as np
import pytest
from conftest import synthetic_digits

import minicnn as mc
from minicnn import layers
from minicnn.plotting import plot_history, plot_misclassified
from minicnn.training import EarlyStopping, LambdaCallback
from minicnn.utils import to_categorical


def small_model(seed=0, dropout=0.0):
    model = mc.Sequential(
        [
            layers.Conv2D(4, (3, 3), strides=2, activation="relu", input_shape=(28, 28, 1)),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(dropout),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        seed=seed,
        backend="numpy",
    )
    model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.Adadelta(), metrics=["accuracy"])
    return model


def data(n, seed=0):
    return synthetic_digits(n, seed=seed)


def test_to_categorical():
    np.testing.assert_array_equal(to_categorical([2, 0, 1]), np.eye(3)[[2, 0, 1]])
    assert to_categorical(np.array([1, 3]), 5).shape == (2, 5)
    with pytest.raises(ValueError, match="label 5 is out of range for num_classes=3"):
        to_categorical([5], 3)


def test_history_params_and_keys():
    x, y = data(50)
    hist = small_model().fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.2)
    assert hist.params == {"verbose": 0, "epochs": 2, "steps": 5}  # 40 training samples / 8
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(hist.history[key]) == 2
    assert hist.epoch == [0, 1]


def test_tutorial_steps_per_epoch():
    from minicnn.training import split_validation

    x = np.zeros((60000, 1))
    xt, _, xv, _ = split_validation(x, x, 0.2)
    assert (len(xt), len(xv), -(-len(xt) // 128)) == (48000, 12000, 375)


def test_validation_is_the_last_fraction_and_metrics_are_dropout_free():
    x, y = data(50)
    model = small_model(dropout=0.5)
    w0 = model.get_weights()
    hist = model.fit(x, y, batch_size=10, epochs=1, verbose=0, validation_split=0.2)
    # val metrics equal an evaluation of the last 10 samples with the final weights, dropout off
    loss, acc = model.evaluate(x[40:], y[40:], batch_size=10, verbose=0)
    assert hist.history["val_loss"][0] == pytest.approx(loss, rel=1e-6)
    assert hist.history["val_accuracy"][0] == pytest.approx(acc, rel=1e-6)
    assert not all(np.array_equal(a, b) for a, b in zip(w0, model.get_weights()))


def test_epoch_loss_is_the_batch_size_weighted_mean_of_pre_update_batch_losses():
    # 23 samples, batch 10: batches of 10, 10 and 3 (the partial batch is kept), in the model's shuffled order.
    x, y = data(23)
    a, b = small_model(seed=5), small_model(seed=5)
    hist = a.fit(x, y, batch_size=10, epochs=1, verbose=0, shuffle=True)
    from minicnn.training import epoch_order

    order = epoch_order(b.seed, 0, 23)  # the order fit used in its first epoch
    results = [b.train_on_batch(x[order[s : s + 10]], y[order[s : s + 10]]) for s in (0, 10, 20)]
    sizes = np.array([10, 10, 3])
    expected_loss = float(np.dot(sizes, [r[0] for r in results]) / 23)
    expected_acc = float(np.dot(sizes, [r[1] for r in results]) / 23)
    assert hist.history["loss"][0] == pytest.approx(expected_loss, rel=1e-5)
    assert hist.history["accuracy"][0] == pytest.approx(expected_acc, rel=1e-5)
    assert all(np.allclose(p, q, rtol=1e-5) for p, q in zip(a.get_weights(), b.get_weights()))


def test_shuffle_changes_the_order_each_epoch():
    seen = []
    model = small_model()
    original = model.train_step

    def spy(xb, yb, **kwargs):
        seen.append(xb[:, 0, 0, 0].copy())
        return original(xb, yb, **kwargs)

    model.train_step = spy
    x, y = data(16)
    x[:, 0, 0, 0] = np.arange(16)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert sorted(seen[0]) == sorted(seen[1]) == list(range(16))
    assert not np.array_equal(seen[0], seen[1])


def test_fit_learns_and_evaluate_predict_agree():
    x, y = data(200)
    model = small_model()
    hist = model.fit(x, y, batch_size=20, epochs=10, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0] / 2
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc == pytest.approx(np.mean(model.predict_classes(x) == y.argmax(1)), abs=1e-6)


def test_verbose_modes_print(capsys):
    x, y = data(30)
    small_model().fit(x, y, batch_size=10, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2 - " in out and "Epoch 2/2 - " in out and "ms/step - loss: " in out
    small_model().fit(x, y, batch_size=10, epochs=1, verbose=1)
    out = capsys.readouterr()
    assert "Epoch 1/1" in out.out and "3/3" in out.out + out.err
    small_model().fit(x, y, batch_size=10, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_callbacks_and_early_stopping():
    x, y = data(40)
    ends = []
    model = small_model()
    stopper = EarlyStopping(monitor="loss", patience=0, min_delta=100.0)  # never "improves" by 100
    hist = model.fit(
        x, y, epochs=10, verbose=0, callbacks=[LambdaCallback(on_epoch_end=lambda e, logs: ends.append(e)), stopper]
    )
    assert ends == [0, 1] and len(hist.epoch) == 2 and stopper.stopped_epoch == 1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"epochs": -1}, "epochs must be an int >= 0"),
        ({"validation_split": 1.0}, r"validation_split must be in \[0, 1\)"),
        ({"validation_split": 0.01}, "leaves an empty validation set"),
    ],
)
def test_fit_argument_errors(kwargs, message):
    x, y = data(20)
    with pytest.raises(ValueError, match=message):
        small_model().fit(x, y, verbose=0, **kwargs)


def test_weights_file_roundtrip_and_mismatch(tmp_path):
    a, b = small_model(seed=1), small_model(seed=2)
    a.save_weights(tmp_path / "w.npz")
    b.load_weights(tmp_path / "w.npz")
    assert all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))
    other = mc.Sequential([layers.Conv2D(5, (3, 3), input_shape=(28, 28, 1))], backend="numpy")
    with pytest.raises(
        ValueError,
        match=r"'conv2d/kernel' has shape \(3, 3, 1, 4\) in the file, the model expects "
        r"\(3, 3, 1, 5\)",
    ):
        other.load_weights(tmp_path / "w.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temporary file left behind


def _decodes_as_png(path):
    from matplotlib.image import imread

    img = imread(path)
    return img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_plots_are_written_and_decode(tmp_path):
    x, y = data(40)
    model = small_model()
    hist = model.fit(x, y, batch_size=10, epochs=2, verbose=0, validation_split=0.25)
    assert _decodes_as_png(plot_history(hist, tmp_path / "h.png"))
    pred = model.predict_classes(x)
    assert _decodes_as_png(plot_misclassified(x, y.argmax(1), (pred + 1) % 10, tmp_path / "m.png"))
    json.dumps(hist.history)


SEQUENCES = [[1.0, 0.9, 0.95, 0.96, 0.97, 0.98], [1.0, 1.1, 0.8, 0.85, 0.7, 0.9, 0.95, 0.99], [1.0, 1.0, 1.0, 1.0]]


class _Model:  # what EarlyStopping needs of a model, without weights to restore
    stop_training = False


def _our_stop(values, patience, min_delta):
    stopper, model = EarlyStopping(monitor="loss", patience=patience, min_delta=min_delta), _Model()
    stopper.model = model
    stopper.on_train_begin()
    for epoch, value in enumerate(values):
        stopper.on_epoch_end(epoch, {"loss": value})
        if model.stop_training:
            return epoch
    return None


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
@pytest.mark.parametrize("values", SEQUENCES)
def test_early_stopping_stops_at_the_epoch_keras_stops_at(values, patience):
    from conftest import import_keras

    keras, _ = import_keras()
    if keras is None:
        pytest.skip("Keras not installed")
    for min_delta in (0.0, 0.06):
        theirs, model = keras.callbacks.EarlyStopping(monitor="loss", patience=patience, min_delta=min_delta), _Model()
        theirs.set_model(model)
        theirs.on_train_begin()
        stopped = None
        for epoch, value in enumerate(values):
            theirs.on_epoch_end(epoch, {"loss": value})
            if model.stop_training:
                stopped = epoch
                break
        assert _our_stop(values, patience, min_delta) == stopped, (values, patience, min_delta)


def test_early_stopping_with_patience_2_stops_after_two_bad_epochs():
    assert _our_stop([1.0, 0.9, 0.95, 0.96, 0.97], patience=2, min_delta=0.0) == 3
