"""The trainer: compile, fit, evaluate and the training step, with Keras's semantics; it knows a model only
through a small public protocol (see :class:`Trainer`), and :class:`minicnn.Sequential` derives from it.

- ``validation_split=f`` holds out the LAST fraction ``f`` of the arrays, taken before any shuffling;
- the training batches are reshuffled every epoch (``shuffle=True``) and the last partial batch is kept;
- an epoch's ``loss``/``accuracy`` are batch-size-weighted means over its batches, each measured with dropout
  on and the weights as they were before that batch's update; ``val_loss``/``val_accuracy`` with dropout off.

One training step (:meth:`Trainer.train_step`)::

    p          = model.forward(x, training=True)
    L, acc, g  = loss.step(p, y)          g = dL/dp, or dL/dz below a softmax output: (p - y)/N (the loss fuses it)
    model.backward(g)                     every layer's backward, last to first; gradients land in the layers
    optimizer.apply(trainable weights, their gradients)

With weight penalties (``kernel_regularizer=``, ``bias_regularizer=``), ``L += sum of penalties`` after the loss and
each ``dW += dpenalty/dW`` after the backward pass (Keras's rule; a model without penalties skips both).

The data goes to the backend (the GPU, for CuPy) once per ``fit``; a step never waits for the device except
where a value is shown (the progress bar, refreshed every few steps) or at the end of the epoch.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

from . import losses as losses_module
from . import optimizers as optimizers_module
from . import sample_weights as weights_module
from .batch_methods import BatchMethods, results
from .batches import epoch_order, evaluate_arrays, split_validation  # noqa: F401  (also imported from here)
from .callbacks import (  # noqa: F401  (the names fit's users import from here)
    Callback,
    EarlyStopping,
    GradientNormRecorder,
    History,
    LambdaCallback,
    batch_callbacks,
)
from .checkpoint import prepare_checkpointing, save_checkpoint, training_state
from .checks import check_positive_int, labels_checked, targets_checked, to_backend_checked
from .compile_notice import CompileNotice
from .fit_checks import callbacks_checked
from .graph_step import graph_step_for
from .interrupts import CtrlC, is_interrupt
from .nan_guard import DeferredNanGuard, NonFiniteLoss, StateGuard
from .progress import Progress
from .run_settings import describe as describe_run

if TYPE_CHECKING:
    from .annotations import ArrayLike, CallbackList, PathLike


class NotCompiledError(ValueError, RuntimeError):
    """Training or evaluating a model that has not been compiled."""


class Trainer(BatchMethods):
    """Compile, fit, evaluate, the training step and its NaN guard, for any model that provides:

    - ``backend``, ``dtype``, ``seed``, ``input_shape``, ``output_shape`` (batch axis excluded);
    - ``forward(x, training)`` -> outputs, and ``backward(grad, from_logits=False, input_gradient=True)`` -> dL/dx,
      which leaves each trainable weight's gradient in ``gradients`` (``from_logits``: ``grad`` is dL/dz below the
      output's softmax; ``input_gradient=False`` lets the first layer skip dL/dx);
    - ``trainable_weights`` and ``gradients`` (same order), ``output_activation`` (the last activation's name, or
      None when the backward pass cannot start below it), ``loss_gradient_buffer(shape)`` (where the loss may write
      its gradient, or None), ``start_epoch(epoch)`` (restart random streams), optionally ``regularized_layers()``
      (the parts whose weights carry penalties);
    - for callbacks and checkpoints: ``get_weights``/``set_weights``, ``named_weights``/``set_named_weights``,
      ``named_shapes`` (names and shapes without copies: what a checkpoint is checked against).
    """

    loss = None
    optimizer = None
    stop_training = False

    # --- compiling ----------------------------------------------------------------------------------
    def compile(
        self,
        loss: str | object = "categorical_crossentropy",
        optimizer: str | object = "adadelta",
        metrics: list[str] | None = None,
    ) -> None:
        """Choose the loss, the optimizer and the metrics (``["accuracy"]``)."""
        self.loss = losses_module.get(loss)
        self.optimizer = optimizers_module.get(optimizer).for_model(self)  # one state per model
        metrics = list(metrics or [])
        for m in metrics:
            if m not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {m!r}; known metrics: accuracy")
        self.metrics = ["accuracy" for _ in metrics[:1]]

    def require_compiled(self, what: str) -> None:
        """A :class:`NotCompiledError` naming ``what`` unless :meth:`compile` was called."""
        if self.loss is None or self.optimizer is None:
            raise NotCompiledError(f"call model.compile(loss=..., optimizer=...) before {what}()")

    # --- data in ------------------------------------------------------------------------------------
    def prepare_inputs(self, x, name="x", shape=None):
        """``x`` checked (numbers, shape ``(N, *input_shape)``, finite), moved to the backend in the model's dtype."""
        return to_backend_checked(self.backend, self.dtype, x, self.input_shape if shape is None else shape, name)

    def prepare_targets(self, y, n):
        """``y`` checked against the outputs (``n`` rows of the output's shape; one-hot rows where the loss needs
        them; class indices (N,) for a sparse loss) and moved to the backend."""
        loss = self.loss
        if getattr(loss, "sparse_targets", False):
            return labels_checked(self.backend, y, n, self.output_shape, loss.name)
        one_hot_for = loss.name if getattr(loss, "one_hot_targets", False) else None
        return targets_checked(self.backend, self.dtype, y, n, self.output_shape, one_hot_for)

    # --- one step -----------------------------------------------------------------------------------
    def through_softmax(self) -> bool:
        """Whether the loss gives its gradient below the model's softmax output (dL/dz = (p - y)/N)."""
        return bool(getattr(self.loss, "fuses_softmax", False)) and self.output_activation == "softmax"

    def forward_backward(self, xb, yb, training: bool, input_gradient: bool = True, sample_weight=None):
        """Forward, loss and backward on backend arrays (nothing updated): ``(loss, accuracy, outputs, dL/dx)``.
        ``sample_weight`` (backend (N,)): the loss is ``(1/N) sum_n w_n l_n`` (see :mod:`minicnn.sample_weights`)."""
        fused = self.through_softmax()
        p = self.forward(xb, training=training)
        if sample_weight is None:
            loss, acc, grad = self.loss.step(self.backend, p, yb, fused, self.loss_gradient_buffer(p.shape))
        else:
            loss, acc, grad = losses_module.weighted_step(
                self.loss, self.backend, p, yb, sample_weight, fused, self.loss_gradient_buffer(p.shape)
            )
        loss, penalized = self.add_penalties(loss)
        dx = self.backward(grad, from_logits=fused, input_gradient=input_gradient)
        for layer in penalized:
            layer.add_penalty_gradients()  # dW += dpenalty/dW (see minicnn.regularizers)
        return loss, acc, p, dx

    # --- weight penalties (kernel_regularizer=, bias_regularizer=) ---------------------------------------
    def regularized_layers(self) -> list:
        """The parts of the model whose weights carry penalties, each with ``regularization_penalty()`` and
        ``add_penalty_gradients()`` (none here; ``Sequential`` lists its layers that have them)."""
        return []

    def regularization_loss(self, layers=None):
        """The sum of every weight penalty (a 0-d backend array), or None when no weight has one."""
        terms = [layer.regularization_penalty() for layer in (self.regularized_layers() if layers is None else layers)]
        return sum(terms[1:], terms[0]) if terms else None

    def add_penalties(self, loss):
        """``(loss + sum of penalties, the layers that have them)``; ``(loss, [])`` untouched when there are none
        (no arithmetic on an unregularized model's path). Keras adds them to the loss it reports and
        differentiates."""
        penalized = self.regularized_layers()
        return (loss + self.regularization_loss(penalized), penalized) if penalized else (loss, penalized)

    def train_step(self, xb, yb, check_finite: bool = False, guard=None, distributed=None, sample_weight=None):
        """One step on backend arrays; returns (loss, accuracy) as backend 0-d arrays (no synchronisation).

        With ``check_finite``, a NaN or infinite loss raises :class:`NonFiniteLoss` BEFORE the update, so the
        weights stay those of the last good step (this reads the loss on the host: one synchronisation).
        With a ``guard`` (:class:`~minicnn.nan_guard.DeferredNanGuard`) the same happens on the device: the guard
        notes the first bad step and gates this and every later update off; ``fit`` reads it now and then.
        With ``distributed`` (:mod:`minicnn.distributed`), ``(xb, yb)`` is this rank's shard of the global batch and
        the gradients, loss and accuracy become the global batch's (one allreduce) before the update."""
        if distributed is not None and xb.shape[0] == 0:
            loss = acc = None  # an empty shard (a last batch smaller than the number of ranks) adds nothing
        else:
            loss, acc, _, _ = self.forward_backward(
                xb, yb, training=True, input_gradient=False, sample_weight=sample_weight
            )
        if distributed is not None:
            loss, acc = distributed.average_gradients(self, loss, acc)
        if check_finite and not math.isfinite(float(loss)):
            raise NonFiniteLoss(float(loss))
        gate = None if guard is None else guard.observe(loss)
        self.optimizer.apply(self.trainable_weights, self.gradients, gate=gate, backend=self.backend)
        return loss, acc

    def compute_gradients(self, x, y, training: bool = False):
        """The loss and dL/dweights on one batch, without updating anything.

        Returns ``(loss, grads)``: a float and host arrays in :attr:`trainable_weights` order.
        ``training=True`` applies dropout (a fresh mask); the default leaves it off.
        """
        if self.loss is None:
            self.loss = losses_module.CategoricalCrossentropy()
        xb = self.prepare_inputs(x)
        loss, _, _, _ = self.forward_backward(xb, self.prepare_targets(y, xb.shape[0]), training=training)
        return float(loss), [self.backend.to_numpy(g) for g in self.gradients]

    # --- evaluating ---------------------------------------------------------------------------------
    def evaluate(
        self,
        x: ArrayLike,
        y: ArrayLike,
        batch_size: int = 32,
        verbose: int = 1,
        sample_weight=None,
        return_dict: bool = False,
    ) -> list[float] | dict[str, float]:
        """``[loss, accuracy]`` on ``(x, y)``, dropout off, in batches (``return_dict=True``: ``{"loss": ...,
        "accuracy": ...}``). ``sample_weight`` (N,): the loss is ``(1/N) sum_n w_n l_n``, the accuracy unweighted."""
        self.require_compiled("evaluate")
        batch_size = check_positive_int(batch_size, "batch_size")
        xb = self.prepare_inputs(x)
        yb = self.prepare_targets(y, xb.shape[0])
        wb = weights_module.to_backend(
            self.backend, self.dtype, weights_module.checked_sample_weight(sample_weight, xb.shape[0])
        )
        progress = Progress(verbose, 1, steps=-(-xb.shape[0] // batch_size))
        progress.begin()
        loss, acc = evaluate_arrays(self, xb, yb, batch_size, progress, sample_weight=wb)
        result = [float(loss), float(acc)]
        progress.end(None, {"loss": result[0], "accuracy": result[1]})
        return results(*result, return_dict)

    # --- training -----------------------------------------------------------------------------------
    def fit(
        self,
        x: ArrayLike,
        y: ArrayLike,
        batch_size: int = 32,
        epochs: int = 1,
        verbose: int = 1,
        validation_split: float = 0.0,
        validation_data: tuple | None = None,
        shuffle: bool = True,
        callbacks: CallbackList | None = None,
        checkpoint_dir: PathLike | None = None,
        resume: bool = False,
        nan_guard: bool | str = True,
        refresh_every: int = 10,
        file=None,
        distributed=None,
        initial_epoch: int = 0,
        class_weight: dict[int, float] | None = None,
        sample_weight: ArrayLike | None = None,
        overwrite: bool = False,
        settings: dict | None = None,
        allow_changed=(),
    ) -> History:
        """Train for ``epochs`` passes over ``(x, y)`` in batches of ``batch_size``, Keras's way.

        ``validation_split`` holds out the LAST fraction of the samples (before shuffling); ``validation_data``
        gives a validation set instead. Each epoch reshuffles the training samples and keeps the last partial
        batch. ``verbose``: 1 a live progress bar, 2 one line per epoch, 0 nothing.

        ``validation_data``: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``. ``sample_weight`` (N,) or
        ``class_weight`` ({class: weight}) weigh each sample's loss (Keras's rules: see :mod:`minicnn.sample_weights`).
        ``initial_epoch``: the epoch to start at (``epochs`` is the last one's number, as in Keras:
        ``initial_epoch=3, epochs=5`` trains epochs 4 and 5).

        Returns a :class:`~minicnn.callbacks.History`: ``history.history["loss"|"accuracy"|"val_loss"|
        "val_accuracy"|"seconds"]`` hold one value per epoch; ``history.params == {"verbose", "epochs", "steps"}``.

        ``checkpoint_dir``: write a checkpoint there at the end of every epoch (weights, optimizer state, epoch,
        history); ``resume=True`` continues from it, ``epochs`` still counting the total. ``nan_guard``: stop at
        once, keeping the last good weights, when the loss becomes NaN or infinite (``history.stopped``
        says where). Ctrl-C stops cleanly too, writing (with ``checkpoint_dir``) the state the interrupted epoch
        started from, so that resuming redoes that epoch exactly.

        ``distributed``: a :class:`minicnn.distributed.MPIStrategy` (under ``mpiexec``): ``batch_size`` is the global
        batch, split across the ranks; gradients are averaged by one allreduce per step; evaluation is sharded; only
        rank 0 shows progress and writes checkpoints (every rank reads one to resume). See docs/distributed.md.
        """
        self.require_compiled("fit")
        batch_size = check_positive_int(batch_size, "batch_size")
        epochs = check_positive_int(epochs, "epochs", minimum=0)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
        w_val = None
        if validation_data is not None:
            x_val, y_val, w_val = weights_module.unpack_validation_data(validation_data)
            x_train, y_train = x, y
        else:
            x_train, y_train, x_val, y_val = split_validation(x, y, validation_split)
        w_train, w_split = weights_module.fit_weights(y_train, len(x_train), len(x), sample_weight, class_weight)
        w_val = w_split if w_val is None else w_val
        if distributed is not None and w_val is not None:
            raise ValueError("validation sample weights are not supported with distributed= training yet")

        backend, xp = self.backend, self.backend.xp
        xb = self.prepare_inputs(x_train)  # the data crosses to the device once per fit
        yb = self.prepare_targets(y_train, xb.shape[0])
        has_val = x_val is not None
        if has_val:
            xvb = self.prepare_inputs(x_val, name="validation x")
            yvb = self.prepare_targets(y_val, xvb.shape[0])
            wvb = weights_module.to_backend(backend, self.dtype, w_val)
        wb = weights_module.to_backend(backend, self.dtype, w_train)

        n = xb.shape[0]
        steps = -(-n // batch_size)
        if distributed is not None:  # checks shared by every rank; only rank 0 shows progress
            verbose = distributed.begin_fit(self, n, batch_size, verbose)
        writes_checkpoints = checkpoint_dir is not None and (distributed is None or distributed.is_root)
        history = History()
        history.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        initial_epoch = check_positive_int(initial_epoch, "initial_epoch", minimum=0)
        settings = describe_run(
            self,
            batch_size,
            "validation_data" if validation_data is not None else validation_split,
            x_train,
            0 if x_val is None else len(x_val),
            settings,
        )
        resumed_epoch = prepare_checkpointing(self, checkpoint_dir, resume, overwrite, history, settings, allow_changed)
        if resume:  # the checkpoint says where to start; initial_epoch is for runs without one
            initial_epoch = resumed_epoch
            if initial_epoch >= epochs and verbose:
                print(
                    f"the checkpoint already holds {initial_epoch} epochs (epochs={epochs}): nothing to do",
                    file=file or sys.stdout,
                )
        callbacks = callbacks_checked(callbacks, has_val)
        for cb in callbacks:
            cb.model = self
        self.stop_training = False
        progress = Progress(verbose, epochs, steps, file=file)
        compiling = CompileNotice(backend, progress, verbose)  # a line while kernels compile, kept out of the ETA
        for cb in callbacks:
            cb.on_train_begin()
        on_batch_begin = batch_callbacks(callbacks, "on_train_batch_begin")
        on_batch_end = batch_callbacks(callbacks, "on_train_batch_end")

        epoch = step = 0
        epoch_start = None
        global_step = initial_epoch * steps
        if nan_guard not in (True, False, "immediate", "deferred"):
            raise ValueError(f"nan_guard must be True, False, 'immediate' or 'deferred', got {nan_guard!r}")
        if nan_guard is True:  # a synchronisation per step is free on the CPU, not on a GPU
            nan_guard = "deferred" if backend.name == "cupy" else "immediate"
        guard = DeferredNanGuard(xp, global_step) if nan_guard == "deferred" else None
        state_guard = StateGuard(self, refresh_every) if nan_guard else None  # weights and optimizer state
        ctrl_c = CtrlC(distributed is None).__enter__()  # Ctrl-C noted, acted on between steps (minicnn.interrupts)
        try:
            for epoch in range(initial_epoch, epochs):
                # the state at the start of this epoch (host copies, ~2 MB for the tutorial): what Ctrl-C saves
                epoch_start = training_state(self, epoch, history) if checkpoint_dir is not None else None
                for cb in callbacks:
                    cb.on_epoch_begin(epoch)
                progress.begin(epoch)
                started = time.perf_counter()
                self.start_epoch(epoch)
                train = graph_step_for(self, batch_size)  # train_step, or its CUDA graph replayed (CuPy)
                order = backend.asarray(epoch_order(self.seed, epoch, n, shuffle))
                sum_loss = xp.zeros((), dtype=self.dtype)
                sum_acc = xp.zeros((), dtype=self.dtype)
                for step in range(steps):
                    for cb in on_batch_begin:
                        cb.on_train_batch_begin(step)
                    idx = order[step * batch_size : (step + 1) * batch_size]
                    count = idx.shape[0]
                    if distributed is not None:  # this rank's slice of the same global batch
                        idx = distributed.shard(self, idx)
                    # weighted steps take the plain path (a CUDA graph replays the unweighted step)
                    step_fn, weights = (train, {}) if wb is None else (self.train_step, {"sample_weight": wb[idx]})
                    loss, acc = step_fn(
                        xb[idx],
                        yb[idx],
                        check_finite=nan_guard == "immediate",
                        guard=guard,
                        distributed=distributed,
                        **weights,
                    )
                    compiling.after_step()
                    sum_loss += loss * count
                    sum_acc += acc * count
                    if on_batch_end:  # Keras's batch logs: the epoch's running means so far
                        seen = min((step + 1) * batch_size, n)
                        batch_logs = {"loss": float(sum_loss) / seen, "accuracy": float(sum_acc) / seen}
                        for cb in on_batch_end:
                            cb.on_train_batch_end(step, batch_logs)
                    global_step += 1
                    ctrl_c.check()
                    done = step + 1
                    if guard is not None and (done % refresh_every == 0 or done == steps):
                        guard.check()
                    if state_guard is not None:
                        state_guard.after_step(done, steps, global_step)
                    if progress.wants_values and (done % refresh_every == 0 or done == steps):
                        seen = min(done * batch_size, n)
                        progress.update(done, float(sum_loss) / seen, float(sum_acc) / seen)
                logs = {"loss": float(sum_loss) / n, "accuracy": float(sum_acc) / n}
                if has_val:
                    if distributed is None:
                        val_loss, val_acc = evaluate_arrays(self, xvb, yvb, batch_size, sample_weight=wvb)
                    else:
                        val_loss, val_acc = distributed.evaluate(self, xvb, yvb, batch_size)
                    logs.update(val_loss=float(val_loss), val_accuracy=float(val_acc))
                seconds = time.perf_counter() - started
                progress.end(epoch, logs)
                history.append(epoch, logs)
                history.history.setdefault("seconds", []).append(seconds)
                if writes_checkpoints:
                    save_checkpoint(self, checkpoint_dir, epoch + 1, history)
                    epoch_start = None  # the checkpoint on disk is now the newer state
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        except NonFiniteLoss as err:
            progress.abandon()
            if err.step is not None:  # found by the deferred guard a few steps later: name the step it happened at
                epoch, step = divmod(err.step, steps)
            history.stopped = {"reason": "nan", "epoch": epoch + 1, "step": step + 1, "loss": err.value}
            kept = None if state_guard is None else state_guard.restore()  # the last finite state, if need be
            kept = "the step before" if kept is None else f"step {kept} (the last state found finite)"
            print(
                f"training stopped: {err} at epoch {epoch + 1}, step {step + 1}; the model keeps the weights of "
                f"{kept} (history holds the {len(history.epoch)} completed epochs)",
                file=file or sys.stderr,
            )
        except (KeyboardInterrupt, SystemError) as err:
            if not is_interrupt(err):
                raise
            progress.abandon()
            history.stopped = {"reason": "interrupted", "epoch": epoch + 1, "step": step + 1}
            kept = ""
            if writes_checkpoints and epoch_start is not None:
                # the interrupted epoch is redone on resume: save the state it started from
                save_checkpoint(self, checkpoint_dir, epoch, history, state=epoch_start)
                kept = (
                    f"; checkpoint written to {checkpoint_dir} ({epoch} epochs done): resume=True (--resume) "
                    f"redoes epoch {epoch + 1} and continues"
                )
            print(f"training interrupted at epoch {epoch + 1}, step {step + 1}{kept}", file=file or sys.stderr)
        finally:
            ctrl_c.__exit__()
        compiling.close()
        for cb in callbacks:
            cb.on_train_end()
        return history


def fit(model, x, y, **kwargs):
    """``model.fit(x, y, **kwargs)`` (the loop's earlier home; see :meth:`Trainer.fit`)."""
    return model.fit(x, y, **kwargs)
