"""The training loop behind ``Sequential.fit`` and ``evaluate``, with Keras's semantics:

- ``validation_split=f`` holds out the LAST fraction ``f`` of the arrays, taken before any shuffling;
- the training batches are reshuffled every epoch (``shuffle=True``) and the last partial batch is kept;
- an epoch's ``loss``/``accuracy`` are batch-size-weighted means over its batches, each measured with dropout
  on and the weights as they were before that batch's update; ``val_loss``/``val_accuracy`` with dropout off.

The data goes to the backend (the GPU, for CuPy) once per ``fit``; a step never waits for the device except
where a value is shown (the progress bar, refreshed every few steps) or at the end of the epoch.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from . import losses as losses_module


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
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

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
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class _Progress:
    """Per-epoch display: a live tqdm bar (verbose=1), one line per epoch (verbose=2), or nothing (0)."""

    def __init__(self, verbose, epochs, steps, file=None):
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.file = file or sys.stdout
        self.bar = None

    def begin(self, epoch=None):
        """Start an epoch's display (``epoch=None``: an evaluation, no "Epoch i/n" title)."""
        self.start = time.perf_counter()
        if self.verbose == 1:
            from tqdm.auto import tqdm

            if epoch is not None:
                print(f"Epoch {epoch + 1}/{self.epochs}", file=self.file)
            self.bar = tqdm(total=self.steps, file=self.file, unit="step", dynamic_ncols=True, leave=True,
                            bar_format="{n_fmt}/{total_fmt} |{bar:24}| {elapsed}<{remaining}{postfix}")

    @property
    def wants_values(self):
        return self.bar is not None

    def update(self, done, loss, acc):
        if self.bar is None:
            return
        elapsed = time.perf_counter() - self.start
        postfix = f"{1000 * elapsed / max(done, 1):.0f}ms/step - loss: {loss:.4f}"
        if acc is not None:
            postfix += f" - accuracy: {acc:.4f}"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(done - self.bar.n)

    def abandon(self):
        """Close a live bar without a summary line (training stopped in the middle of an epoch)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def end(self, epoch, logs):
        seconds = time.perf_counter() - self.start
        text = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.verbose == 1 or (self.verbose == 2 and epoch is None):
            print(f"{self.steps}/{self.steps} - {seconds:.0f}s - {text}", file=self.file)
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.epochs} - {seconds:.0f}s - "
                  f"{1000 * seconds / self.steps:.0f}ms/step - {text}", file=self.file)


def _check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def split_validation(x, y, validation_split):
    """Keras's split: the last ``validation_split`` fraction, before shuffling. Returns (x, y, x_val, y_val)."""
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    n = len(x)
    n_val = int(n * validation_split)
    if validation_split > 0 and (n_val == 0 or n_val == n):
        raise ValueError(f"validation_split={validation_split} of {n} samples leaves an empty "
                         f"{'validation' if n_val == 0 else 'training'} set")
    if n_val == 0:
        return x, y, None, None
    return x[:n - n_val], y[:n - n_val], x[n - n_val:], y[n - n_val:]


def evaluate_arrays(model, xb, yb, batch_size, progress=None):
    """Mean loss and accuracy over backend arrays, in batches, dropout off. Returns backend 0-d arrays."""
    xp = model.backend.xp
    total_loss = xp.zeros((), dtype=model.dtype)
    total_acc = xp.zeros((), dtype=model.dtype)
    n = xb.shape[0]
    for step, start in enumerate(range(0, n, batch_size), 1):
        x, y = xb[start:start + batch_size], yb[start:start + batch_size]
        p = model.forward(x, training=False)
        total_loss += model.loss.forward(xp, p, y) * x.shape[0]
        total_acc += losses_module.categorical_accuracy(xp, p, y) * x.shape[0]
        if progress is not None and progress.wants_values and step % 10 == 0:
            done = min(start + batch_size, n)
            progress.update(step, float(total_loss) / done, float(total_acc) / done)
    return total_loss / n, total_acc / n


class DeferredNanGuard:
    """The NaN guard without a synchronisation per step, for GPUs: on the device it keeps ``ok`` (False from the
    first step whose loss is not finite on) and that step's index; ``ok`` gates every update, so the weights stay
    those before the bad step. ``check()`` reads the flag on the host (fit does so every few steps and at the end
    of each epoch) and raises :class:`~minicnn.model.NonFiniteLoss` naming the step."""

    def __init__(self, xp, first_step: int = 0):
        self.xp = xp
        self.ok = xp.ones((), dtype=bool)
        self.bad_step = xp.full((), -1, dtype=np.int64)
        self.bad_loss = xp.zeros((), dtype=np.float64)
        self.step = first_step

    def observe(self, loss):
        """Note one step's loss (on the device); returns the gate for its update."""
        xp = self.xp
        finite = xp.isfinite(loss)
        first_bad = self.ok & ~finite
        self.bad_step[...] = xp.where(first_bad, self.step, self.bad_step)
        self.bad_loss[...] = xp.where(first_bad, loss, self.bad_loss)
        self.ok &= finite
        self.step += 1
        return self.ok

    def check(self):
        from .model import NonFiniteLoss

        if not bool(self.ok):
            raise NonFiniteLoss(float(self.bad_loss), int(self.bad_step))


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool = True) -> np.ndarray:
    """The order of the training samples in ``epoch``: a permutation drawn from a stream seeded by (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)


def _start_epoch_streams(model, epoch):
    for layer in model.layers:
        if hasattr(layer, "reseed"):
            layer.reseed(epoch)


def fit(model, x, y, batch_size=32, epochs=1, verbose=1, validation_split=0.0, validation_data=None,
        shuffle=True, callbacks=None, refresh_every=10, file=None, checkpoint_dir=None, resume=False,
        nan_guard=True):
    """Train ``model`` on ``(x, y)``; see :meth:`minicnn.Sequential.fit`."""
    from .checkpoint import load_checkpoint, save_checkpoint, training_state
    from .model import NonFiniteLoss

    model._require_compiled("fit")
    batch_size = _check_positive_int(batch_size, "batch_size")
    epochs = _check_positive_int(epochs, "epochs", minimum=0)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if validation_data is not None:
        x_val, y_val = validation_data
        x_train, y_train = x, y
    else:
        x_train, y_train, x_val, y_val = split_validation(x, y, validation_split)

    backend, xp = model.backend, model.backend.xp
    xb = model._to_backend(x_train)                      # the data crosses to the device once per fit
    yb = model._check_targets(y_train, xb.shape[0])
    has_val = x_val is not None
    if has_val:
        xvb = model._to_backend(x_val, name="validation x")
        yvb = model._check_targets(y_val, xvb.shape[0])

    n = xb.shape[0]
    steps = -(-n // batch_size)
    history = History()
    history.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir=... (where the checkpoint is)")
    initial_epoch = 0
    if resume:
        meta = load_checkpoint(model, checkpoint_dir)
        initial_epoch = int(meta["epochs_done"])
        for e in range(initial_epoch):
            history.append(e, {k: v[e] for k, v in meta["history"].items() if k != "seconds"})
        history.history["seconds"] = list(meta["history"].get("seconds", []))
        if initial_epoch >= epochs and verbose:
            print(f"the checkpoint already holds {initial_epoch} epochs (epochs={epochs}): nothing to do",
                  file=file or sys.stdout)
    callbacks = list(callbacks or [])
    for cb in callbacks:
        cb.model = model
    model.stop_training = False
    progress = _Progress(verbose, epochs, steps, file=file)
    for cb in callbacks:
        cb.on_train_begin()

    epoch = step = 0
    epoch_start = None
    global_step = initial_epoch * steps
    if nan_guard not in (True, False, "immediate", "deferred"):
        raise ValueError(f"nan_guard must be True, False, 'immediate' or 'deferred', got {nan_guard!r}")
    if nan_guard is True:   # a synchronisation per step is free on the CPU, not on a GPU
        nan_guard = "deferred" if backend.name == "cupy" else "immediate"
    guard = DeferredNanGuard(xp, global_step) if nan_guard == "deferred" else None
    try:
        for epoch in range(initial_epoch, epochs):
            # the state at the start of this epoch (host copies, ~2 MB for the tutorial): what Ctrl-C saves
            epoch_start = training_state(model, epoch, history) if checkpoint_dir is not None else None
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            progress.begin(epoch)
            started = time.perf_counter()
            _start_epoch_streams(model, epoch)
            order = backend.asarray(epoch_order(model.seed, epoch, n, shuffle))
            sum_loss = xp.zeros((), dtype=model.dtype)
            sum_acc = xp.zeros((), dtype=model.dtype)
            for step in range(steps):
                idx = order[step * batch_size:(step + 1) * batch_size]
                loss, acc = model._train_step(xb[idx], yb[idx], check_finite=nan_guard == "immediate", guard=guard)
                sum_loss += loss * idx.shape[0]
                sum_acc += acc * idx.shape[0]
                for cb in callbacks:
                    cb.on_train_batch_end(global_step, {"epoch": epoch})
                global_step += 1
                done = step + 1
                if guard is not None and (done % refresh_every == 0 or done == steps):
                    guard.check()
                if progress.wants_values and (done % refresh_every == 0 or done == steps):
                    seen = min(done * batch_size, n)
                    progress.update(done, float(sum_loss) / seen, float(sum_acc) / seen)
            logs = {"loss": float(sum_loss) / n, "accuracy": float(sum_acc) / n}
            if has_val:
                val_loss, val_acc = evaluate_arrays(model, xvb, yvb, batch_size)
                logs.update(val_loss=float(val_loss), val_accuracy=float(val_acc))
            seconds = time.perf_counter() - started
            progress.end(epoch, logs)
            history.append(epoch, logs)
            history.history.setdefault("seconds", []).append(seconds)
            if checkpoint_dir is not None:
                save_checkpoint(model, checkpoint_dir, epoch + 1, history)
                epoch_start = None   # the checkpoint on disk is now the newer state
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    except NonFiniteLoss as err:
        progress.abandon()
        if err.step is not None:   # found by the deferred guard a few steps later: name the step it happened at
            epoch, step = divmod(err.step, steps)
        history.stopped = {"reason": "nan", "epoch": epoch + 1, "step": step + 1, "loss": err.value}
        print(f"training stopped: {err} at epoch {epoch + 1}, step {step + 1}; the model keeps the weights of the "
              f"step before (history holds the {len(history.epoch)} completed epochs)", file=file or sys.stderr)
    except KeyboardInterrupt:
        progress.abandon()
        history.stopped = {"reason": "interrupted", "epoch": epoch + 1, "step": step + 1}
        kept = ""
        if checkpoint_dir is not None and epoch_start is not None:
            # the interrupted epoch is redone on resume: save the state it started from
            save_checkpoint(model, checkpoint_dir, epoch, history, state=epoch_start)
            kept = (f"; checkpoint written to {checkpoint_dir} ({epoch} epochs done): resume=True (--resume) "
                    f"redoes epoch {epoch + 1} and continues")
        print(f"training interrupted at epoch {epoch + 1}, step {step + 1}{kept}", file=file or sys.stderr)
    for cb in callbacks:
        cb.on_train_end()
    return history
