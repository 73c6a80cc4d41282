"""Each callback against Keras's own: the same sequence of logs fed to both must give the same decisions (the epoch
it stops at, the learning rates, the epochs saved, the CSV file byte for byte)."""

import os
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import KERAS_MISSING, import_keras
from optional_modules import need

from minicnn import callbacks as ours


@pytest.fixture(scope="module")
def keras():
    keras, _ = import_keras()
    if keras is None:
        pytest.skip(KERAS_MISSING)
    return keras


class FakeModel:
    """What the callbacks need of a model: stop_training, an optimizer's learning rate, weights that change every
    epoch (here one counter array) and save methods that record where they were asked to write."""

    def __init__(self, learning_rate=0.1):
        self.stop_training = False
        self.optimizer = SimpleNamespace(learning_rate=learning_rate)
        self.epoch_weight = 0
        self.restored = None
        self.saved = []

    def get_weights(self):
        return [np.array(self.epoch_weight)]

    def set_weights(self, weights):
        self.restored = int(weights[0])

    def save(self, path, overwrite=True, **kwargs):
        with open(path, "w") as fh:
            fh.write("model")
        self.saved.append(path)

    save_weights = save


def drive(callback, logs_sequence, model=None):
    """Run ``callback`` through a fake training whose epochs end with ``logs_sequence``; returns (model, the epoch
    it stopped at or None, the learning rate seen at each epoch's end)."""
    model = model or FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    stopped, rates = None, []
    for epoch, logs in enumerate(logs_sequence):
        model.epoch_weight = epoch
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, dict(logs))
        rates.append(float(model.optimizer.learning_rate))
        if model.stop_training:
            stopped = epoch
            break
    callback.on_train_end()
    return model, stopped, rates


LOSSES = [
    [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.5, 0.6],
    [1.0, 1.1, 0.8, 0.85, 0.7, 0.9, 0.95, 0.99, 0.98, 0.97],
    [0.5, 0.5, 0.5, 0.5, 0.49995, 0.4, 0.4, 0.4],
]


def as_logs(values, key="val_loss"):
    return [{"loss": v + 0.1, key: v} for v in values]


@pytest.mark.parametrize("values", LOSSES)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(patience=1),
        dict(patience=2, restore_best_weights=True),
        dict(patience=3, min_delta=0.02, restore_best_weights=True),
        dict(patience=2, baseline=0.85),
        dict(patience=1, start_from_epoch=2),
    ],
)
def test_early_stopping_matches_keras_including_the_restored_epoch(keras, values, kwargs):
    theirs, stop_k, _ = drive(keras.callbacks.EarlyStopping(**kwargs), as_logs(values))
    mine, stop_m, _ = drive(ours.EarlyStopping(**kwargs), as_logs(values))
    assert stop_m == stop_k
    assert mine.restored == theirs.restored  # None without restore_best_weights


@pytest.mark.parametrize("values", LOSSES)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(factor=0.5, patience=1),
        dict(factor=0.1, patience=2, cooldown=1),
        dict(factor=0.5, patience=1, min_lr=0.03, min_delta=0.05),
        dict(factor=0.2, patience=0, cooldown=2),
    ],
)
def test_reduce_lr_on_plateau_gives_keras_learning_rates(keras, values, kwargs):
    _, _, rates_k = drive(keras.callbacks.ReduceLROnPlateau(**kwargs), as_logs(values))
    _, _, rates_m = drive(ours.ReduceLROnPlateau(**kwargs), as_logs(values))
    np.testing.assert_allclose(rates_m, rates_k, rtol=1e-12)
    assert len(set(rates_m)) > 1  # the sequences do make it reduce


def test_reduce_lr_on_plateau_maximising_accuracy(keras):
    logs = as_logs([0.5, 0.6, 0.55, 0.58, 0.61, 0.61, 0.6], key="val_accuracy")
    _, _, rates_k = drive(keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=0.5, patience=1, mode="max"), logs)
    _, _, rates_m = drive(ours.ReduceLROnPlateau("val_accuracy", factor=0.5, patience=1), logs)  # auto: max
    assert rates_m == rates_k and rates_m[-1] < rates_m[0]


@pytest.mark.parametrize("schedule", [lambda epoch, lr: lr * 0.5 if epoch % 2 else lr, lambda epoch: 0.1 / (1 + epoch)])
def test_learning_rate_scheduler_sets_keras_rates(keras, schedule):
    logs = as_logs([1.0] * 5)
    _, _, rates_k = drive(keras.callbacks.LearningRateScheduler(schedule), logs)
    _, _, rates_m = drive(ours.LearningRateScheduler(schedule), logs)
    assert rates_m == rates_k and len(set(rates_m)) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(save_best_only=True),
        dict(save_best_only=True, mode="max"),
        dict(save_best_only=True, initial_value_threshold=0.92),
    ],
)
def test_model_checkpoint_saves_the_epochs_keras_saves(keras, tmp_path, kwargs):
    pattern = str(tmp_path / "{kind}" / "m-{{epoch:02d}}-{{val_loss:.3f}}.keras")
    logs = as_logs(LOSSES[1])
    theirs, _, _ = drive(keras.callbacks.ModelCheckpoint(pattern.format(kind="k"), **kwargs), logs)
    mine, _, _ = drive(ours.ModelCheckpoint(pattern.format(kind="m"), **kwargs), logs)
    assert [os.path.basename(p) for p in mine.saved] == [os.path.basename(p) for p in theirs.saved]
    assert 0 < len(theirs.saved) <= len(logs)


def test_model_checkpoint_weights_only_names_the_same_files_as_keras(keras, tmp_path):
    logs = as_logs(LOSSES[0])
    theirs, _, _ = drive(
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "w-{epoch}.weights.h5"), save_best_only=True, save_weights_only=True
        ),
        logs,
    )
    ours_cb = ours.ModelCheckpoint(str(tmp_path / "w-{epoch}.npz"), save_best_only=True, save_weights_only=True)
    drive(ours_cb, logs)
    assert [os.path.basename(p).removesuffix(".npz") for p in ours_cb.saved] == [
        os.path.basename(p).removesuffix(".weights.h5") for p in theirs.saved
    ]


@pytest.mark.parametrize(
    "logs", [as_logs([0.9, 0.8, 0.85]), [{"loss": 0.5, "accuracy": 0.8}, {"loss": 0.25, "accuracy": 0.9}]]
)
@pytest.mark.parametrize("separator", [",", ";"])
def test_csv_logger_writes_keras_files_byte_for_byte(keras, tmp_path, logs, separator):
    for kind, module in (("k", keras.callbacks), ("m", ours)):
        path = tmp_path / f"{kind}.csv"
        drive(module.CSVLogger(str(path), separator=separator), logs)
        drive(module.CSVLogger(str(path), separator=separator, append=True), logs[:2])  # a second run, appended
    assert (tmp_path / "m.csv").read_bytes() == (tmp_path / "k.csv").read_bytes()
    assert (tmp_path / "m.csv").read_text().count("epoch") == 1  # one header, kept when appending


def test_learning_rate_reaches_the_csv_after_a_scheduler(keras, tmp_path):
    logs = as_logs([1.0, 0.9, 0.8])
    for kind, module in (("k", keras.callbacks), ("m", ours)):
        scheduler = module.LearningRateScheduler(lambda epoch, lr: 0.5**epoch)
        logger = module.CSVLogger(str(tmp_path / f"{kind}.csv"))
        model = FakeModel()
        for cb in (scheduler, logger):
            cb.set_model(model)
            cb.on_train_begin()
        for epoch, epoch_logs in enumerate(logs):
            scheduler.on_epoch_begin(epoch)
            epoch_logs = dict(epoch_logs)
            for cb in (scheduler, logger):
                cb.on_epoch_end(epoch, epoch_logs)
        logger.on_train_end()
    assert (tmp_path / "m.csv").read_text() == (tmp_path / "k.csv").read_text()
    assert "learning_rate" in (tmp_path / "m.csv").read_text().splitlines()[0]


def test_tensorboard_uses_keras_folders_and_tags(keras, tmp_path):
    need("tensorboardX", "tensorboard")
    need("tensorboard", "tensorboard")  # Keras's TensorBoard callback writes with it
    import tensorflow as tf

    import minicnn as mc
    from minicnn import layers

    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(x[:, 0] > 0).astype(int)]
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    theirs.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    theirs.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        validation_split=0.25,
        callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "k"), write_graph=False)],
    )
    mine = mc.Sequential([layers.Dense(2, activation="softmax", input_shape=(4,))], backend="numpy")
    mine.compile(optimizer="sgd", metrics=["accuracy"])
    mine.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[ours.TensorBoard(tmp_path / "m")])

    def tags(root):
        found = set()
        for folder in sorted(os.listdir(root)):
            for name in os.listdir(root / folder):
                for event in tf.compat.v1.train.summary_iterator(str(root / folder / name)):
                    found |= {(folder, value.tag, event.step) for value in event.summary.value}
        return found

    assert tags(tmp_path / "m") == tags(tmp_path / "k")
    assert ("validation", "epoch_loss", 1) in tags(tmp_path / "m")
