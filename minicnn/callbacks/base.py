"""Callbacks: code that ``fit`` calls at the start and end of training, of each epoch and around each step
(Keras's hooks), and the ``History`` that ``fit`` returns; LambdaCallback and GradientNormRecorder."""

from __future__ import annotations


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
        self.seen = 0  # training steps so far, over the whole run (fit numbers batches within each epoch)

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

    def __init__(
        self,
        on_epoch_begin=None,
        on_epoch_end=None,
        on_train_begin=None,
        on_train_end=None,
        on_train_batch_begin=None,
        on_train_batch_end=None,
        on_batch_begin=None,
        on_batch_end=None,
    ):
        for name, fn in [
            ("on_epoch_begin", on_epoch_begin),
            ("on_epoch_end", on_epoch_end),
            ("on_train_begin", on_train_begin),
            ("on_train_end", on_train_end),
            ("on_train_batch_begin", on_train_batch_begin or on_batch_begin),
            ("on_train_batch_end", on_train_batch_end or on_batch_end),
        ]:
            if fn is not None:
                setattr(self, name, fn)


def batch_callbacks(callbacks, hook: str) -> list:
    """The callbacks in ``callbacks`` whose ``hook`` (e.g. "on_train_batch_end") does something: ``fit`` builds
    the batch logs (which read the running loss: a synchronisation on a GPU) only when one of them listens."""
    return [
        cb
        for cb in callbacks
        if hasattr(cb, hook) and (getattr(type(cb), hook, None) is not getattr(Callback, hook) or hook in vars(cb))
    ]
