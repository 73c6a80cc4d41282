"""Callbacks: code that ``fit`` calls at the start and end of training, of each epoch and after each step
(Keras's hooks), and the ``History`` that ``fit`` returns."""

from __future__ import annotations

import numpy as np


class History:
    """What ``fit`` returns: ``history`` (per-epoch lists of each metric), ``params`` and ``epoch``.

    ``stopped`` is None after a complete run, else a dict saying why and where training stopped early
    (``{"reason": "nan", "epoch": e, "step": s, ...}`` or ``{"reason": "interrupted", ...}``).
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.params: dict = {}
        self.epoch: list[int] = []
        self.stopped: dict | None = None

    def append(self, epoch: int, logs: dict):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __repr__(self):
        return f"<History epochs={len(self.epoch)} metrics={list(self.history)}>"


class Callback:
    """Override any of these; ``self.model`` is set by ``fit``. Set ``model.stop_training = True`` to stop."""

    model = None

    def on_train_begin(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_train_batch_end(self, step, logs=None):
        """After every training step (``step`` counts from 0 over the whole run; ``logs`` has ``epoch``)."""

    def on_train_end(self, logs=None): ...


class GradientNormRecorder(Callback):
    """Records, every ``every`` training steps, the L2 norm of each parameter's gradient (``norms[name]`` is a
    list, ``steps`` the step numbers). Reading the norms synchronises a GPU; ``every`` keeps that rare.

    Example:
        >>> recorder = GradientNormRecorder(every=10)                                   # doctest: +SKIP
        >>> model.fit(x, y, callbacks=[recorder])                                       # doctest: +SKIP
        >>> minicnn.plotting.plot_gradient_norms(recorder, "gradient_norms.png")       # doctest: +SKIP
    """

    def __init__(self, every: int = 1):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.every = every
        self.steps: list[int] = []
        self.norms: dict[str, list[float]] = {}

    def on_train_batch_end(self, step, logs=None):
        if step % self.every:
            return
        self.steps.append(step)
        xp = self.model.backend.xp
        for layer in self.model.layers:
            for key, g in layer.grads.items():
                self.norms.setdefault(f"{layer.name}/{key}", []).append(float(xp.sqrt((g * g).sum())))


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(logs))``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None):
        for name, fn in [("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end)]:
            if fn is not None:
                setattr(self, name, fn)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs (Keras's rule:
    ``patience=2`` stops at the end of the second epoch in a row without improvement; never after the first epoch).

    With ``restore_best_weights=True`` the weights of the best epoch are put back at the end.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto", restore_best_weights=False):
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(float(min_delta))
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.sign = 1.0 if mode == "min" else -1.0
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.best_weights, self.stopped_epoch = np.inf, 0, None, None

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in (logs or {}):
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, but the epoch's logs hold {list(logs or {})}")
        value = self.sign * logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
