"""Callbacks inside a real ``fit``: batch logs, saved files that hold the weights of the epoch they name, restored best
weights, CSV rows equal to the history, learning rates that take effect, TensorBoard event files read back."""

import csv
import glob
import os
import struct

import numpy as np
import pytest
from conftest import synthetic_digits
from optional_modules import need

import minicnn as mc
from minicnn import callbacks as cbs
from minicnn import layers


def small_model(seed=0):
    model = mc.Sequential(
        [
            layers.Conv2D(4, (3, 3), strides=2, activation="relu", input_shape=(28, 28, 1)),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        seed=seed,
        backend="numpy",
    )
    model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.Adadelta(), metrics=["accuracy"])
    return model


class Recorder(cbs.Callback):
    """Keeps every batch's (epoch, batch, logs) and each epoch's weights."""

    def __init__(self):
        self.batches, self.weights, self.epoch = [], [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append((self.epoch, batch, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def test_batch_logs_number_batches_within_the_epoch_and_end_at_the_epoch_means():
    x, y = synthetic_digits(50)
    recorder = Recorder()
    hist = small_model().fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[recorder])
    assert [(e, b) for e, b, _ in recorder.batches] == [(e, b) for e in range(2) for b in range(4)]
    for epoch in range(2):
        last = [logs for e, _, logs in recorder.batches if e == epoch][-1]
        assert last["loss"] == pytest.approx(hist.history["loss"][epoch], rel=1e-6)
        assert last["accuracy"] == pytest.approx(hist.history["accuracy"][epoch], rel=1e-6)
    first = recorder.batches[0][2]
    assert set(first) == {"loss", "accuracy"} and first["loss"] != recorder.batches[1][2]["loss"]


def test_model_checkpoint_files_hold_the_weights_of_the_epochs_they_name(tmp_path):
    x, y = synthetic_digits(60, seed=1)
    recorder = Recorder()
    best = cbs.ModelCheckpoint(
        str(tmp_path / "w-{epoch:02d}-{val_loss:.3f}.npz"), save_best_only=True, save_weights_only=True
    )
    hist = small_model().fit(
        x, y, batch_size=16, epochs=4, verbose=0, validation_split=0.25, callbacks=[recorder, best]
    )
    val = hist.history["val_loss"]
    improved = [e for e in range(4) if val[e] < min(val[:e], default=np.inf)]
    expected = [f"w-{e + 1:02d}-{val[e]:.3f}.npz" for e in improved]
    assert sorted(os.listdir(tmp_path)) == expected  # no temporary file left behind
    for e, name in zip(improved, expected):
        saved = small_model(seed=5)
        saved.load_weights(tmp_path / name)
        for a, b in zip(saved.get_weights(), recorder.weights[e]):
            np.testing.assert_array_equal(a, b)


def test_model_checkpoint_every_n_steps_names_epoch_and_batch(tmp_path):
    x, y = synthetic_digits(48, seed=2)
    every = cbs.ModelCheckpoint(str(tmp_path / "s-{epoch}-{batch}.npz"), save_weights_only=True, save_freq=2)
    small_model().fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[every])  # 3 steps an epoch
    assert [os.path.basename(p) for p in every.saved] == ["s-1-2.npz", "s-2-1.npz", "s-2-3.npz"]


def test_model_checkpoint_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match=r"\.npz"):
        cbs.ModelCheckpoint(str(tmp_path / "w.h5"), save_weights_only=True)
    with pytest.raises(ValueError, match=r"\.keras.*save_weights_only=True"):
        cbs.ModelCheckpoint(str(tmp_path / "w.npz"))
    with pytest.raises(ValueError, match="save_freq"):
        cbs.ModelCheckpoint(str(tmp_path / "w.npz"), save_weights_only=True, save_freq=0)
    with pytest.raises(ValueError, match="up or down"):
        cbs.ModelCheckpoint(str(tmp_path / "w.keras"), monitor="val_f1")
    x, y = synthetic_digits(20)
    with pytest.raises(KeyError, match="val_loss.*no validation"):
        small_model().fit(
            x, y, epochs=1, verbose=0, callbacks=[cbs.ModelCheckpoint(str(tmp_path / "w.keras"), save_best_only=True)]
        )
    with pytest.raises(KeyError, match="val_acc"):
        small_model().fit(
            x,
            y,
            epochs=1,
            verbose=0,
            validation_split=0.2,
            callbacks=[cbs.ModelCheckpoint(str(tmp_path / "w-{val_acc}.keras"))],
        )


def test_model_checkpoint_saves_whole_models_that_load_back(tmp_path):
    need("h5py", "keras-files")
    from minicnn.models import load_model

    x, y = synthetic_digits(40, seed=6)
    recorder = Recorder()
    every = cbs.ModelCheckpoint(tmp_path / "m-{epoch}.keras", save_best_only=False)
    small_model().fit(x, y, batch_size=10, epochs=2, verbose=0, validation_split=0.25, callbacks=[recorder, every])
    assert sorted(os.listdir(tmp_path)) == ["m-1.keras", "m-2.keras"]
    for epoch in (0, 1):
        for a, b in zip(load_model(tmp_path / f"m-{epoch + 1}.keras").get_weights(), recorder.weights[epoch]):
            np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_the_best_epochs_weights():
    x, y = synthetic_digits(60, seed=3)
    recorder = Recorder()
    # monitoring the training loss against a huge min_delta: no epoch after the first counts as an improvement
    stop = cbs.EarlyStopping(monitor="loss", patience=2, min_delta=100.0, restore_best_weights=True)
    model = small_model()
    hist = model.fit(x, y, batch_size=16, epochs=10, verbose=0, callbacks=[recorder, stop])
    assert hist.epoch == [0, 1, 2] and stop.stopped_epoch == 2 and stop.best_epoch == 0
    for a, b in zip(model.get_weights(), recorder.weights[0]):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(recorder.weights[0], recorder.weights[2]))


def test_csv_logger_rows_are_the_history(tmp_path):
    x, y = synthetic_digits(40)
    path = tmp_path / "log" / "train.csv"
    hist = small_model().fit(
        x, y, batch_size=10, epochs=3, verbose=0, validation_split=0.25, callbacks=[cbs.CSVLogger(path)]
    )
    rows = list(csv.DictReader(path.open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [float(r[key]) for r in rows] == hist.history[key]


def test_learning_rate_scheduler_changes_the_rate_the_optimizer_uses():
    x, y = synthetic_digits(32)
    seen = []
    model = small_model()
    spy = cbs.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((model.optimizer.learning_rate, logs["learning_rate"]))
    )
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        verbose=0,
        callbacks=[cbs.LearningRateScheduler(lambda epoch, lr: 0.5**epoch), spy],
    )
    assert seen == [(1.0, 1.0), (0.5, 0.5), (0.25, 0.25)]
    # the rate is used: one epoch at a tiny rate barely moves the weights, at rate 1 it moves them
    moved = []
    for rate in (1e-6, 1.0):
        m = small_model()
        before = m.get_weights()
        schedule = cbs.LearningRateScheduler(lambda epoch, lr, r=rate: r)
        m.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[schedule])
        moved.append(max(float(np.abs(a - b).max()) for a, b in zip(before, m.get_weights())))
    assert moved[0] < 1e-4 < moved[1]
    with pytest.raises(ValueError, match="positive"):
        small_model().fit(x, y, epochs=1, verbose=0, callbacks=[cbs.LearningRateScheduler(lambda e: -1.0)])


def read_events(folder):
    """Every (tag, step, value) of the scalar summaries in the event files of ``folder``: TFRecord framing (length,
    its CRC, the record, its CRC) around Event protocol buffers, decoded with tensorboardX's generated classes."""
    from tensorboardX.proto.event_pb2 import Event

    scalars = []
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        data = open(path, "rb").read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                scalars.append((value.tag, event.step, value.simple_value))
    return scalars


def test_tensorboard_writes_keras_tags_that_read_back_as_the_history(tmp_path):
    need("tensorboardX", "tensorboard")
    x, y = synthetic_digits(40)
    board = cbs.TensorBoard(tmp_path, update_freq=2)
    hist = small_model().fit(x, y, batch_size=10, epochs=2, verbose=0, validation_split=0.25, callbacks=[board])
    train, val = read_events(tmp_path / "train"), read_events(tmp_path / "validation")
    for tag, key, events in [
        ("epoch_loss", "loss", train),
        ("epoch_accuracy", "accuracy", train),
        ("epoch_loss", "val_loss", val),
        ("epoch_accuracy", "val_accuracy", val),
    ]:
        got = [(s, v) for t, s, v in events if t == tag]
        assert [s for s, _ in got] == [0, 1]
        np.testing.assert_allclose([v for _, v in got], hist.history[key], rtol=1e-6)  # stored as float32
    assert [(s, v) for t, s, v in train if t == "epoch_learning_rate"] == [(0, 1.0), (1, 1.0)]
    assert [s for t, s, _ in train if t == "batch_loss"] == [1, 3, 5]  # every 2nd of 6 steps
