"""EarlyStopping: stop training when a metric has stopped improving (Keras's rule, step for step)."""

from __future__ import annotations

from .base import Callback
from .monitor import Monitor


class EarlyStopping(Monitor, Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs (Keras's rule:
    ``patience=2`` stops at the end of the second epoch in a row without improvement; never after the first epoch).

    ``mode``: "min", "max" or "auto" (loss: min, accuracy: max). ``baseline``: a value to beat; the count of epochs
    without improvement restarts only when both the best so far and the baseline are beaten. ``start_from_epoch``:
    epochs to wait before watching at all. ``restore_best_weights=True`` puts the weights of the best epoch back
    at the end of training (whether or not it stopped early, as Keras does; the first watched epoch counts as best
    until another beats it). After training, ``stopped_epoch`` (0: not stopped) and ``best_epoch`` say what happened.
    A ``monitor`` missing from the epoch's logs is an error (Keras only warns): minicnn's logs are fixed, so it is a
    typo or a monitor of ``val_*`` without validation data.

    Example:
        >>> stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)  # doctest: +SKIP
        >>> model.fit(x, y, validation_split=0.2, epochs=50, callbacks=[stop])            # doctest: +SKIP
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0.0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        self.init_monitor(monitor, mode, min_delta, baseline)
        self.patience, self.verbose = int(patience), verbose
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, int(start_from_epoch)
        self.baseline = baseline

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        current = self.monitored(logs)
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self.is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self.is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)
