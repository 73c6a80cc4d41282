"""ModelCheckpoint: save the model (or its weights) during training, every epoch or only when it improves."""

from __future__ import annotations

import os

from .base import Callback
from .monitor import Monitor


class ModelCheckpoint(Monitor, Callback):
    """Save the model at the end of every epoch (``save_freq="epoch"``) or every ``save_freq`` training steps.

    ``filepath`` may name the epoch (from 1), the step within the epoch (``{batch}``, from 1, with an integer
    ``save_freq``) and any key of the logs, e.g. ``"ckpt/w-{epoch:02d}-{val_loss:.2f}.npz"``. With
    ``save_best_only`` a file is written only when ``monitor`` improves (``mode``, ``initial_value_threshold``: the
    value to beat first). ``save_weights_only=True`` writes :meth:`~minicnn.Sequential.save_weights`'s ``.npz``;
    otherwise :meth:`~minicnn.Sequential.save`'s whole-model ``.keras`` file (which Keras opens too). Both write
    atomically (a temporary file, then one rename): a crash while saving leaves the previous file whole.

    Example:
        >>> best = ModelCheckpoint("best.npz", monitor="val_accuracy", save_best_only=True,
        ...                        save_weights_only=True)                              # doctest: +SKIP
        >>> model.fit(x, y, validation_split=0.2, epochs=10, callbacks=[best])          # doctest: +SKIP
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        self.init_monitor(monitor, mode, 0.0, initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose, self.save_best_only, self.save_weights_only = verbose, save_best_only, save_weights_only
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"save_freq must be 'epoch' or a positive number of steps, got {save_freq!r}")
        if save_weights_only and not self.filepath.endswith(".npz"):
            raise ValueError(
                f"with save_weights_only=True the filepath must end in .npz (minicnn's weights file), "
                f"got {self.filepath!r}"
            )
        if not save_weights_only and not self.filepath.endswith(".keras"):
            raise ValueError(
                f"a whole-model checkpoint's filepath must end in .keras, got {self.filepath!r} (for "
                f"a weights file, .npz, pass save_weights_only=True)"
            )
        self.save_freq = save_freq
        self.epoch, self.steps_since_save = 0, 0
        self.saved: list[str] = []  # every path written, in order

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self.steps_since_save += 1
        if self.steps_since_save >= self.save_freq:
            self.steps_since_save = 0
            self.save(self.epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self.save(epoch, None, logs)

    def path_for(self, epoch: int, batch: int | None, logs) -> str:
        """``filepath`` formatted with ``epoch + 1``, ``batch + 1`` (when saving by steps) and the logs."""
        fields = dict(logs or {}, epoch=epoch + 1)
        if batch is not None:
            fields.setdefault("batch", batch + 1)
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError, ValueError) as err:
            raise KeyError(
                f"ModelCheckpoint cannot fill in the filepath {self.filepath!r}: {err!r} (the fields "
                f"are {', '.join(fields)})"
            ) from None

    def save(self, epoch: int, batch: int | None, logs) -> None:
        path = self.path_for(epoch, batch, logs)
        if os.path.isdir(path):
            raise IsADirectoryError(f"ModelCheckpoint's filepath is a folder: {path} (name a file)")
        if self.save_best_only:
            current = self.monitored(logs)
            if not self.is_improvement(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                best = "None" if self.best is None else f"{self.best:.5f}"
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, saving to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        (self.model.save_weights if self.save_weights_only else self.model.save)(path)
        self.saved.append(path)
