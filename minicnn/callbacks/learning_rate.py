"""Callbacks that change the optimizer's learning rate between epochs: LearningRateScheduler, ReduceLROnPlateau.

Both set ``model.optimizer.learning_rate`` (read at every update) and add ``learning_rate`` to the epoch's logs, so
that callbacks after them in the list (CSVLogger, TensorBoard) record it, as in Keras.
"""

from __future__ import annotations

import math

from .base import Callback
from .monitor import Monitor


def set_learning_rate(optimizer, value, who: str) -> float:
    """``optimizer.learning_rate = value`` after checking it is a positive finite number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: the learning rate must be a number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{who}: the learning rate must be positive and finite, got {value!r}")
    optimizer.learning_rate = value
    return value


class LearningRateScheduler(Callback):
    """At the start of each epoch set the learning rate to ``schedule(epoch, lr)`` (``epoch`` counts from 0, ``lr``
    is the current rate); a ``schedule(epoch)`` of one argument works too (Keras tries two, then one).

    Example:
        >>> halve = LearningRateScheduler(lambda epoch, lr: lr if epoch < 5 else lr * 0.5)   # doctest: +SKIP
        >>> model.fit(x, y, epochs=10, callbacks=[halve])                                  # doctest: +SKIP
    """

    def __init__(self, schedule, verbose: int = 0):
        if not callable(schedule):
            raise TypeError(f"schedule must be a function schedule(epoch, lr) -> lr, got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            value = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:
            value = self.schedule(epoch)
        value = set_learning_rate(optimizer, value, "LearningRateScheduler")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {value}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Monitor, Callback):
    """Multiply the learning rate by ``factor`` (< 1) when ``monitor`` has not improved by more than ``min_delta``
    for ``patience`` epochs, never below ``min_lr``; then wait ``cooldown`` epochs before counting again (Keras's
    rule, step for step).

    Example:
        >>> plateau = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-4)  # doctest: +SKIP
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau needs 0 < factor < 1, got factor={factor!r}")
        if min_lr < 0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr!r}")
        self.init_monitor(monitor, mode, min_delta)
        self.factor, self.patience, self.verbose = float(factor), int(patience), verbose
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)
        self.wait = self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = float(optimizer.learning_rate)
        current = self.monitored(logs)
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self.reduce(optimizer, epoch):
                self.cooldown_counter, self.wait = self.cooldown, 0

    def reduce(self, optimizer, epoch) -> bool:
        """``lr <- max(lr * factor, min_lr)`` unless the rate is already at ``min_lr``; whether it changed."""
        old = float(optimizer.learning_rate)
        if old <= self.min_lr:
            return False
        new = max(old * self.factor, self.min_lr)
        if new <= 0:  # min_lr=0 and an underflow: minicnn's optimizers need a positive rate
            return False
        set_learning_rate(optimizer, new, "ReduceLROnPlateau")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
        return True
