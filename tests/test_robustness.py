"""Bad input gets one clear error; NaN losses stop training; checkpoints are atomic and resume exactly."""

import os

import numpy as np
import pytest
from conftest import synthetic_digits

import minicnn as mc
from minicnn import layers
from minicnn.training import LambdaCallback


def small_model(seed=0, optimizer=None):
    model = mc.Sequential(
        [
            layers.Conv2D(4, (3, 3), strides=2, activation="relu", input_shape=(28, 28, 1)),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        seed=seed,
        backend="numpy",
    )
    model.compile(
        loss="categorical_crossentropy", optimizer=optimizer or mc.optimizers.Adadelta(), metrics=["accuracy"]
    )
    return model


X, Y = synthetic_digits(8)
NAN_X = X.copy()
NAN_X[3, 4, 5, 0] = np.nan
INF_X = X.copy()
INF_X[0, 0, 0, 0] = np.inf

# (what, call, exception, message pattern): each is one distinct bad input and the message it must give
BAD_CALLS = [
    (
        "x missing its channel axis",
        lambda m: m.predict(X[..., 0]),
        ValueError,
        r"x has shape \(8, 28, 28\) \(3 dimensions\), expected \(N, 28, 28, 1\); add the channel axis",
    ),
    (
        "x of the wrong image size",
        lambda m: m.predict(np.zeros((2, 32, 32, 1))),
        ValueError,
        r"x has shape \(2, 32, 32, 1\).*expected \(N, 28, 28, 1\)",
    ),
    ("x of rank 2", lambda m: m.predict(np.zeros((2, 784))), ValueError, r"x has shape \(2, 784\) \(2 dimensions\)"),
    (
        "x of strings",
        lambda m: m.predict(np.full((2, 28, 28, 1), "a")),
        TypeError,
        "x must hold numbers, got dtype <U1",
    ),
    ("x as objects", lambda m: m.predict(np.array([None, 1], dtype=object)), TypeError, "x must hold numbers"),
    ("x with NaN", lambda m: m.predict(NAN_X), ValueError, "x holds 1 NaN or infinite values"),
    ("x with infinity", lambda m: m.train_on_batch(INF_X, Y), ValueError, "x holds 1 NaN or infinite values"),
    ("empty x", lambda m: m.predict(np.zeros((0, 28, 28, 1))), ValueError, r"x is empty \(0 samples\)"),
    ("x and y of different lengths", lambda m: m.train_on_batch(X, Y[:5]), ValueError, "x has 8 samples but y has 5"),
    (
        "y as class indices",
        lambda m: m.train_on_batch(X, Y.argmax(1)),
        ValueError,
        r"class indices of shape \(8,\).*to_categorical\(y, 10\)",
    ),
    (
        "y of the wrong width",
        lambda m: m.train_on_batch(X, np.eye(5)[[0] * 8]),
        ValueError,
        r"y has shape \(8, 5\).*expected \(N, 10\)",
    ),
    (
        "y not one-hot (values > 1)",
        lambda m: m.train_on_batch(X, Y * 3),
        ValueError,
        r"one-hot rows \(values in \[0, 1\]\).*from 0.0 to 3.0",
    ),
    ("y rows not summing to 1", lambda m: m.train_on_batch(X, Y * 0.5), ValueError, "row 0 sums to 0.5"),
    ("y with NaN", lambda m: m.train_on_batch(X, np.where(Y == 1, np.nan, 0)), ValueError, "y holds 8 NaN"),
    ("batch_size 0", lambda m: m.fit(X, Y, batch_size=0, verbose=0), ValueError, "batch_size must be an int >= 1"),
    (
        "batch_size as a float",
        lambda m: m.fit(X, Y, batch_size=2.5, verbose=0),
        ValueError,
        "batch_size must be an int",
    ),
    ("negative epochs", lambda m: m.fit(X, Y, epochs=-1, verbose=0), ValueError, "epochs must be an int >= 0"),
    (
        "validation_split 1",
        lambda m: m.fit(X, Y, validation_split=1.0, verbose=0),
        ValueError,
        r"validation_split must be in \[0, 1\)",
    ),
    (
        "validation_split leaving no validation sample",
        lambda m: m.fit(X, Y, validation_split=0.05, verbose=0),
        ValueError,
        "leaves an empty validation set",
    ),
    ("verbose 3", lambda m: m.fit(X, Y, verbose=3), ValueError, "verbose must be 0, 1 or 2"),
    ("predict batch_size 0", lambda m: m.predict(X, batch_size=0), ValueError, "batch_size must be a positive int"),
    (
        "resume without a checkpoint dir",
        lambda m: m.fit(X, Y, resume=True, verbose=0),
        ValueError,
        r"resume=True needs checkpoint_dir",
    ),
    (
        "set_weights with a wrong shape",
        lambda m: m.set_weights([np.zeros((1,))] * 4),
        ValueError,
        r"layer 'conv2d' kernel has shape \(3, 3, 1, 4\), got \(1,\)",
    ),
]


@pytest.mark.parametrize("what,call,exc,message", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_gives_its_message(what, call, exc, message):
    with pytest.raises(exc, match=message):
        call(small_model())


BAD_DEFINITIONS = [
    (
        "kernel larger than its input",
        lambda: mc.Sequential([layers.Conv2D(2, (7, 7), input_shape=(5, 5, 1))]),
        ValueError,
        r"layer 'conv2d': kernel \(7, 7\) with padding 'valid' does not fit its input 5x5",
    ),
    (
        "pool larger than its input",
        lambda: mc.Sequential([layers.Conv2D(2, 3, input_shape=(6, 6, 1)), layers.MaxPooling2D((5, 5))]),
        ValueError,
        r"layer 'max_pooling2d': pool \(5, 5\).*does not fit its input 4x4",
    ),
    (
        "a shape reaching zero deep in the model",
        lambda: mc.Sequential(
            [layers.Conv2D(2, 5, input_shape=(12, 12, 1)), layers.MaxPooling2D(2), layers.Conv2D(2, 5)]
        ),
        ValueError,
        r"layer 'conv2d_1'.*does not fit its input 4x4",
    ),
    ("zero strides", lambda: layers.Conv2D(2, 3, strides=0), ValueError, "strides must be positive"),
    ("negative pool stride", lambda: layers.MaxPooling2D(2, strides=-1), ValueError, "strides must be positive"),
    ("kernel_size of the wrong type", lambda: layers.Conv2D(2, "3"), TypeError, "kernel_size must be an int or a pair"),
    ("dropout rate 1", lambda: layers.Dropout(1.0), ValueError, r"Dropout rate must be in \[0, 1\), got 1.0"),
    ("negative dropout rate", lambda: layers.Dropout(-0.1), ValueError, r"Dropout rate must be in \[0, 1\)"),
    ("zero filters", lambda: layers.Conv2D(0, 3), ValueError, "filters must be a positive int, got 0"),
    ("zero units", lambda: layers.Dense(0), ValueError, "units must be a positive int, got 0"),
    ("unknown padding", lambda: layers.Conv2D(2, 3, padding="full"), ValueError, "padding must be 'valid' or 'same'"),
    (
        "unknown activation",
        lambda: layers.Dense(2, activation="gelu"),
        ValueError,
        "unknown activation 'gelu'; known activations: linear, relu, sigmoid, tanh, softmax",
    ),
    ("unknown loss", lambda: small_model().compile(loss="mse"), ValueError, "known losses: categorical_crossentropy"),
    (
        "unknown optimizer",
        lambda: small_model().compile(optimizer="adamax"),
        ValueError,
        "known optimizers: adadelta, sgd, adam, adamw, rmsprop",
    ),
    ("unknown metric", lambda: small_model().compile(metrics=["auc"]), ValueError, "known metrics: accuracy"),
    (
        "Dense after an image without Flatten",
        lambda: mc.Sequential([layers.Conv2D(2, 3, input_shape=(6, 6, 1)), layers.Dense(3)]),
        ValueError,
        "put a Flatten",
    ),
    ("a non-layer in the model", lambda: mc.Sequential(["conv"]), TypeError, "expects a minicnn layer, got str"),
    ("a float16 model", lambda: mc.Sequential(dtype="float16"), ValueError, "dtype must be float32 or float64"),
    (
        "negative Adadelta learning rate",
        lambda: mc.optimizers.Adadelta(-1),
        ValueError,
        "learning_rate must be positive",
    ),
    ("a seed that is not an int", lambda: mc.set_seed("1"), ValueError, "seed must be a non-negative int"),
    ("an unknown backend", lambda: mc.get_backend("tpu"), ValueError, "known backends: numpy, numba, cupy"),
]


@pytest.mark.parametrize("what,make,exc,message", BAD_DEFINITIONS, ids=[c[0] for c in BAD_DEFINITIONS])
def test_bad_definition_gives_its_message(what, make, exc, message):
    with pytest.raises(exc, match=message):
        make()


def test_fit_before_compile_is_a_value_error():
    model = mc.Sequential([layers.Dense(2, input_shape=(3,))], backend="numpy")
    with pytest.raises(ValueError, match=r"call model.compile\(loss=..., optimizer=...\) before fit\(\)"):
        model.fit(np.zeros((2, 3)), np.eye(2))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_nan_guard_stops_at_once_and_keeps_the_last_good_weights(capsys):
    # SGD with an absurd learning rate: the weights blow up and the loss becomes NaN within a few steps.
    model = small_model(optimizer=mc.optimizers.SGD(learning_rate=1e36))
    x, y = synthetic_digits(64)
    snapshots = []
    original = model.train_step

    def spy(xb, yb, **kwargs):
        snapshots.append(model.get_weights())
        return original(xb, yb, **kwargs)

    model.train_step = spy
    hist = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert hist.stopped["reason"] == "nan" and hist.stopped["epoch"] == 1
    bad_step = hist.stopped["step"]
    assert len(snapshots) == bad_step
    for kept, before in zip(model.get_weights(), snapshots[-1]):  # the update of the bad step never happened
        np.testing.assert_array_equal(kept, before)
    assert hist.epoch == [] and hist.history == {}
    assert f"at epoch 1, step {bad_step}" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("optimizer", ["adadelta", "sgd"])
def test_deferred_nan_guard_names_the_same_step_and_keeps_the_same_weights(optimizer):
    # The GPU's guard (no synchronisation per step) must stop on the same step and keep the same weights as the
    # immediate one, although it notices up to 10 steps later. Adadelta gates on the device, SGD on the host.
    make = {
        "adadelta": lambda: mc.optimizers.Adadelta(learning_rate=1e30),
        "sgd": lambda: mc.optimizers.SGD(learning_rate=1e36),
    }[optimizer]
    x, y = synthetic_digits(160)
    results = []
    for mode in ("immediate", "deferred"):
        model = small_model(optimizer=make())
        hist = model.fit(x, y, batch_size=8, epochs=2, verbose=0, nan_guard=mode)
        results.append((hist.stopped, model.get_weights()))
    (stop_a, w_a), (stop_b, w_b) = results
    assert stop_a is not None and stop_a["reason"] == "nan"
    assert (stop_a["epoch"], stop_a["step"]) == (stop_b["epoch"], stop_b["step"])
    for a, b in zip(w_a, w_b):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(w).all() for w in w_b)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cupy"])
def test_a_nan_weight_is_caught_on_every_backend(backend):
    # A NaN planted in a hidden Dense kernel after step 6 must reach the loss (through ReLU) and stop training at
    # step 7 with either guard, keeping identical weights.
    try:
        mc.get_backend(backend)
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"backend {backend!r} unavailable here: {err}")

    class Poison(mc.training.Callback):
        def on_train_batch_end(self, step, logs=None):
            if step == 5:
                self.model.params[4][...] = np.nan

    x, y = synthetic_digits(160)
    results = []
    for mode in ("immediate", "deferred"):
        model = mc.Sequential(
            [
                layers.Conv2D(4, (3, 3), strides=2, activation="relu", input_shape=(28, 28, 1)),
                layers.MaxPooling2D((2, 2)),
                layers.Flatten(),
                layers.Dense(16, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ],
            seed=0,
            backend=backend,
        )
        model.compile()
        hist = model.fit(x, y, batch_size=8, epochs=2, verbose=0, nan_guard=mode, callbacks=[Poison()])
        assert hist.stopped is not None and (hist.stopped["epoch"], hist.stopped["step"]) == (1, 7), hist.stopped
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path):
    x, y = synthetic_digits(48, seed=4)
    straight = small_model(seed=9)
    h1 = straight.fit(x, y, batch_size=16, epochs=3, verbose=0, validation_split=0.25)

    class StopInEpoch2(mc.training.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt  # as if Ctrl-C were pressed at the start of epoch 2

    first = small_model(seed=9)
    h_int = first.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        verbose=0,
        validation_split=0.25,
        checkpoint_dir=tmp_path,
        callbacks=[StopInEpoch2()],
    )
    assert h_int.stopped["reason"] == "interrupted" and h_int.epoch == [0]
    from minicnn.checkpoint import load_checkpoint

    assert load_checkpoint(small_model(seed=9), tmp_path)["epochs_done"] == 1  # epoch 1's end, not older
    resumed = small_model(seed=9)  # a fresh process would build the model anew
    h2 = resumed.fit(
        x, y, batch_size=16, epochs=3, verbose=0, validation_split=0.25, checkpoint_dir=tmp_path, resume=True
    )
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert h2.history[k] == h1.history[k]
    assert h2.epoch == [0, 1, 2]
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 9


def test_ctrl_c_in_the_middle_of_the_first_epoch_writes_a_checkpoint_that_resumes_exactly(tmp_path):
    x, y = synthetic_digits(48, seed=5)
    straight = small_model(seed=3)
    straight.fit(x, y, batch_size=8, epochs=2, verbose=0)

    class CtrlC(mc.training.Callback):
        def on_train_batch_end(self, step, logs=None):
            if step == 3:
                raise KeyboardInterrupt  # in the middle of epoch 1: no epoch has completed yet

    first = small_model(seed=3)
    hist = first.fit(x, y, batch_size=8, epochs=2, verbose=0, checkpoint_dir=tmp_path, callbacks=[CtrlC()])
    assert hist.stopped == {"reason": "interrupted", "epoch": 1, "step": 4}
    assert (tmp_path / "checkpoint.npz").exists()
    resumed = small_model(seed=3)
    h2 = resumed.fit(x, y, batch_size=8, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    assert h2.epoch == [0, 1]
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_crash_while_writing_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    from minicnn import checkpoint

    x, y = synthetic_digits(16)
    model = small_model()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    before = (tmp_path / "checkpoint.npz").read_bytes()

    def crash(fh, **arrays):
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # no temporary file left behind
    monkeypatch.undo()
    fresh = small_model()
    h = fresh.fit(x, y, batch_size=8, epochs=1, verbose=0, checkpoint_dir=tmp_path, resume=True)
    assert h.epoch == [0]  # loads, and holds one epoch: nothing left to do


def test_resume_with_a_mismatched_model_names_the_tensor(tmp_path):
    x, y = synthetic_digits(16)
    small_model().fit(x, y, batch_size=8, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    other = mc.Sequential(
        [
            layers.Conv2D(5, (3, 3), strides=2, activation="relu", input_shape=(28, 28, 1)),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        backend="numpy",
    )
    other.compile()
    with pytest.raises(ValueError, match=r"'conv2d/kernel' has shape \(3, 3, 1, 4\) in the file"):
        other.fit(x, y, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)


def test_unreadable_data_directory_is_named(tmp_path):
    from minicnn.datasets import DataFileError, read_idx_dir

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(DataFileError, match=f"{not_a_dir}: cannot list the directory"):
        read_idx_dir(not_a_dir)


def test_lambda_callback_still_sees_every_epoch():
    seen = []
    small_model().fit(X, Y, epochs=2, verbose=0, callbacks=[LambdaCallback(on_epoch_end=lambda e, l: seen.append(e))])
    assert seen == [0, 1]
