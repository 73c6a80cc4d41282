"""The callback protocol (Keras's hooks: ``fit`` calls them at the start and end of training, of each epoch and
around each step), the ``History`` that ``fit`` returns, and the small callbacks: LambdaCallback,
GradientNormRecorder, EarlyStopping."""

from __future__ import annotations

from .monitor import Monitor


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
    params: dict = {}

    def set_model(self, model) -> None:
        """Keras's way to give the callback its model (``fit`` sets ``self.model`` itself)."""
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        """Before every training step (``batch`` counts from 0 within the epoch)."""

    def on_train_batch_end(self, batch, logs=None):
        """After every training step: ``batch`` counts from 0 within the epoch (Keras's), ``logs`` holds the running
        means of the epoch so far, ``{"loss": ..., "accuracy": ...}`` (each weighted by batch size)."""

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
        self.seen = 0   # training steps so far, over the whole run (fit numbers batches within each epoch)

    def on_train_batch_end(self, batch, logs=None):
        step, self.seen = self.seen, self.seen + 1
        if step % self.every:
            return
        self.steps.append(step)
        xp = self.model.backend.xp
        for layer in self.model.layers:
            for key, g in layer.grads.items():
                self.norms.setdefault(f"{layer.name}/{key}", []).append(float(xp.sqrt((g * g).sum())))


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(logs))``
    (``on_batch_begin``/``on_batch_end`` are Keras's other names for the ``on_train_batch_*`` hooks)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, on_batch_begin=None, on_batch_end=None):
        for name, fn in [("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_train_batch_begin", on_train_batch_begin or on_batch_begin),
                         ("on_train_batch_end", on_train_batch_end or on_batch_end)]:
            if fn is not None:
                setattr(self, name, fn)


def batch_callbacks(callbacks, hook: str) -> list:
    """The callbacks in ``callbacks`` whose ``hook`` (e.g. "on_train_batch_end") does something: ``fit`` builds
    the batch logs (which read the running loss: a synchronisation on a GPU) only when one of them listens."""
    return [cb for cb in callbacks if hasattr(cb, hook) and (getattr(type(cb), hook, None) is not
                                                               getattr(Callback, hook) or hook in vars(cb))]


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

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
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
