"""``Sequential``: a stack of layers, trained by backpropagation.

One training step (``train_on_batch``)::

    a_0 = x;  a_l = layer_l.forward(a_{l-1})          forward, layer by layer
    L   = loss(a_L, y)
    g_L = dL/da_L  (fused: dL/dz_L = (p - y)/N for softmax + cross-entropy)
    g_{l-1} = layer_l.backward(g_l)                   backward, in reverse order
    optimizer.apply(params, grads)                     each layer's params updated from its grads
"""

from __future__ import annotations

import math
import re

import numpy as np

from . import losses as losses_module
from . import optimizers as optimizers_module
from .backend import Backend, get_backend
from .layers.base import Layer
from .seeding import resolve_seed


class NonFiniteLoss(ArithmeticError):
    """The loss of a training step was NaN or infinite (raised before that step's update).

    ``step``: the global index of that step when it was found later (deferred guard), else None."""

    def __init__(self, value: float, step: int | None = None):
        super().__init__(f"the loss became {value}")
        self.value, self.step = value, step


class NotCompiledError(ValueError, RuntimeError):
    """Training or evaluating a model that has not been compiled."""


def _snake_case(name: str) -> str:
    """Keras's layer naming: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


class Sequential:
    """A linear stack of layers, with Keras's interface.

    Args:
        layers: the layers, first to last (more can be added with :meth:`add`).
        name: the model's name (``"sequential"``).
        dtype: ``"float32"`` (training) or ``"float64"`` (gradient checks).
        seed: seeds initial weights, dropout and shuffling (default: :func:`minicnn.set_seed`'s, else random).
        backend: ``"numpy"``, ``"numba"``, ``"cupy"`` or a Backend (default: :func:`minicnn.set_backend`'s).

    Example:
        >>> import minicnn as mc
        >>> from minicnn import layers
        >>> model = mc.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)), layers.Dense(2)], seed=0)
        >>> model.count_params()
        26
    """

    def __init__(self, layers=None, name: str = "sequential", dtype="float32", seed: int | None = None,
                 backend: str | Backend | None = None):
        self.name = name
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.seed = resolve_seed(seed)
        self.rng = np.random.default_rng(self.seed)
        self.backend = get_backend(backend)
        self.layers: list[Layer] = []
        self.loss = None
        self.optimizer = None
        self.metrics: list[str] = []
        self.stop_training = False
        self._name_counts: dict[str, int] = {}
        for layer in layers or []:
            self.add(layer)

    # --- assembling -------------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append a layer; it is built at once when the input shape is known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a minicnn layer, got {type(layer).__name__}")
        if layer.name is None:
            base = _snake_case(type(layer).__name__)
            count = self._name_counts.get(base, 0)
            layer.name = base if count == 0 else f"{base}_{count}"
            self._name_counts[base] = count + 1
        if any(other.name == layer.name for other in self.layers):
            raise ValueError(f"the model already has a layer named {layer.name!r}")
        self.layers.append(layer)
        if len(self.layers) == 1:
            if layer.input_shape is not None:
                self.build(layer.input_shape)
        elif self.layers[-2].built:
            self._build_layer(layer, self.layers[-2].output_shape)

    def _build_layer(self, layer, input_shape):
        layer.build(input_shape, self.backend, self.dtype, self.rng)
        layer.reuse_buffers = True   # a model's layers write into buffers kept across steps (see Layer)

    def build(self, input_shape) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis excluded), drawing initial weights."""
        shape = tuple(int(d) for d in input_shape)
        for layer in self.layers:
            self._build_layer(layer, shape)
            shape = layer.output_shape

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers)

    def _require_built(self):
        if not self.layers:
            raise ValueError("the model has no layers")
        if not self.built:
            raise ValueError("the model is not built: give the first layer an input_shape=(...) "
                             "or call model.build(input_shape)")

    @property
    def input_shape(self):
        self._require_built()
        return self.layers[0].input_shape

    @property
    def output_shape(self):
        self._require_built()
        return self.layers[-1].output_shape

    # --- parameters ---------------------------------------------------------------------------------
    @property
    def params(self) -> list:
        """Every parameter (backend arrays), in Keras's order: per layer, kernel then bias."""
        return [p for layer in self.layers for p in layer.params.values()]

    @property
    def grads(self) -> list:
        """The gradients of :attr:`params` from the last backward pass, same order."""
        return [g for layer in self.layers for g in layer.grads.values()]

    def count_params(self) -> int:
        self._require_built()
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self) -> list[np.ndarray]:
        """Host copies of every parameter, in Keras's order (Keras's ``get_weights()`` loads as it is)."""
        self._require_built()
        return [self.backend.to_numpy(p) for p in self.params]

    def set_weights(self, weights) -> None:
        """Set every parameter from arrays in Keras's order; shapes must match."""
        self._require_built()
        weights = list(weights)
        slots = [(layer.name, key, p) for layer in self.layers for key, p in layer.params.items()]
        if len(weights) != len(slots):
            raise ValueError(f"set_weights: the model has {len(slots)} weight arrays, got {len(weights)}")
        for (layer_name, key, p), w in zip(slots, weights):
            w = np.asarray(w) if not hasattr(w, "__cuda_array_interface__") else w
            if tuple(w.shape) != tuple(p.shape):
                raise ValueError(f"set_weights: layer {layer_name!r} {key} has shape {tuple(p.shape)}, "
                                 f"got {tuple(w.shape)}")
        for (_, _, p), w in zip(slots, weights):
            p[...] = self.backend.asarray(w, dtype=self.dtype)

    # --- compiling ----------------------------------------------------------------------------------
    def compile(self, loss="categorical_crossentropy", optimizer="adadelta", metrics=None) -> None:
        """Choose the loss, the optimizer and the metrics (``["accuracy"]``)."""
        self.loss = losses_module.get(loss)
        self.optimizer = optimizers_module.get(optimizer)
        metrics = list(metrics or [])
        for m in metrics:
            if m not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {m!r}; known metrics: accuracy")
        self.metrics = ["accuracy" for _ in metrics[:1]]

    def _require_compiled(self, what):
        if self.loss is None:
            raise NotCompiledError(f"call model.compile(loss=..., optimizer=...) before {what}()")

    # --- the computation ----------------------------------------------------------------------------
    def _to_backend(self, x, name="x", shape=None):
        """Validate a host or backend array and move it to the backend in the model's dtype.

        Checks, each a ValueError/TypeError naming ``name``: numbers (not strings or objects), the shape
        ``(N, *shape)`` (with a reshape hint when only the channel axis is missing), at least one sample, no NaN
        or infinity."""
        shape = self.input_shape if shape is None else tuple(shape)
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            try:
                x = np.asarray(x)
            except (ValueError, TypeError) as err:
                raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__} ({err})") from None
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
        expected = "(N, " + ", ".join(map(str, shape)) + ")"
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            hint = ""
            if tuple(x.shape[1:]) + (1,) == shape:
                hint = f"; add the channel axis: {name}.reshape(-1, {', '.join(map(str, shape))})"
            raise ValueError(f"{name} has shape {tuple(x.shape)} ({x.ndim} dimensions), expected {expected}{hint}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 samples)")
        xb = self.backend.asarray(x, dtype=self.dtype)
        if x.dtype.kind == "f" and not bool(self.backend.xp.isfinite(xb).all()):
            bad = int((~self.backend.xp.isfinite(xb)).sum())
            raise ValueError(f"{name} holds {bad} NaN or infinite values; clean or impute them first")
        return xb

    def forward(self, x, training: bool = False):
        """Run every layer's forward on a backend array ``x``; returns the output (backend array).

        The output lives in the last layer's reused buffer: the next call overwrites it (``predict`` copies)."""
        for layer in self.layers:
            x = layer.run_forward(x, training=training)
        return x

    def backward(self, grad, fused_softmax: bool = False, input_gradient: bool = True):
        """Run every layer's backward, last to first. With ``fused_softmax``, ``grad`` is dL/dz of the
        last layer (past its softmax). Returns dL/dx for the model's input (None with ``input_gradient=False``,
        which lets the first layer skip that work)."""
        layers = self.layers
        first = layers[0]
        if hasattr(first, "compute_input_gradient"):
            first.compute_input_gradient = input_gradient
        if fused_softmax:
            grad = layers[-1].run_backward(grad, linear=True)
            layers = layers[:-1]
        for layer in reversed(layers):
            grad = layer.run_backward(grad)
        return grad

    def _uses_fused_softmax(self) -> bool:
        last = self.layers[-1]
        return (isinstance(self.loss, losses_module.CategoricalCrossentropy)
                and getattr(last, "activation", None) == "softmax" and hasattr(last, "backward_linear"))

    def _forward_backward(self, x, y, training: bool, input_gradient: bool = True):
        """Forward, loss and backward on backend arrays; returns (loss, outputs, dL/dx) as backend arrays."""
        xp = self.backend.xp
        p = self.forward(x, training=training)
        loss = self.loss.forward(xp, p, y)
        if self._uses_fused_softmax():
            grad, fused = self.loss.backward_from_softmax(p, y), True
        else:
            grad, fused = self.loss.backward(xp, p, y), False
        dx = self.backward(grad, fused_softmax=fused, input_gradient=input_gradient)
        return loss, p, dx

    def _check_targets(self, y, n):
        """Validate targets for the loss: one row per sample of x, one-hot (or probability) rows of the output's
        width. Class indices get a hint to use ``to_categorical``."""
        k = self.output_shape[-1]
        if hasattr(y, "ndim") and y.ndim == 1 and y.dtype.kind in "iu" and len(self.output_shape) == 1:
            raise ValueError(f"y holds class indices of shape {tuple(y.shape)}; the loss expects one-hot rows of "
                             f"shape (N, {k}): use minicnn.utils.to_categorical(y, {k})")
        yb = self._to_backend(y, name="y", shape=self.output_shape)
        if yb.shape[0] != n:
            raise ValueError(f"x has {n} samples but y has {yb.shape[0]}")
        if isinstance(self.loss, losses_module.CategoricalCrossentropy):
            xp = self.backend.xp
            if bool((yb < 0).any()) or bool((yb > 1).any()):
                raise ValueError(f"y must hold one-hot rows (values in [0, 1]) for {self.loss.name}, found values "
                                 f"from {float(yb.min())} to {float(yb.max())}")
            sums = yb.sum(axis=-1)
            if not bool(xp.all(xp.abs(sums - 1) <= 1e-3)):
                worst = int(xp.argmax(xp.abs(sums - 1)))
                raise ValueError(f"y must hold one-hot rows summing to 1 for {self.loss.name}; row {worst} sums to "
                                 f"{float(sums[worst])}")
        return yb

    def train_on_batch(self, x, y) -> list[float]:
        """One step of training on one batch: returns ``[loss, accuracy]`` measured before the update."""
        self._require_compiled("train_on_batch")
        xb = self._to_backend(x)
        yb = self._check_targets(y, xb.shape[0])
        loss, acc = self._train_step(xb, yb)
        return [float(loss), float(acc)]

    def _fused_train_step(self, xb, yb, check_finite, guard):
        """The training step when softmax meets cross-entropy: loss, accuracy and dL/dz from one backend call."""
        p = self.forward(xb, training=True)
        last = self.layers[-1]
        loss, acc, grad = self.backend.softmax_crossentropy_step(p, yb, self.loss.epsilon,
                                                                 last._buffer("grad_z", p.shape))
        if check_finite and not math.isfinite(float(loss)):
            raise NonFiniteLoss(float(loss))
        self.backward(grad, fused_softmax=True, input_gradient=False)
        gate = None if guard is None else guard.observe(loss)
        self.optimizer.apply(self.params, self.grads, gate=gate, backend=self.backend)
        return loss, acc

    def _train_step(self, xb, yb, check_finite: bool = False, guard=None):
        """One step on backend arrays; returns (loss, accuracy) as backend 0-d arrays (no synchronisation).

        With ``check_finite``, a NaN or infinite loss raises :class:`NonFiniteLoss` BEFORE the update, so the
        weights stay those of the last good step (this reads the loss on the host: one synchronisation).
        With a ``guard`` (:class:`~minicnn.training.DeferredNanGuard`) the same happens on the device: the guard
        notes the first bad step and gates this and every later update off; ``fit`` reads it now and then."""
        if self._uses_fused_softmax():
            return self._fused_train_step(xb, yb, check_finite, guard)
        loss, p, _ = self._forward_backward(xb, yb, training=True, input_gradient=False)
        if check_finite and not math.isfinite(float(loss)):
            raise NonFiniteLoss(float(loss))
        acc = losses_module.categorical_accuracy(self.backend.xp, p, yb)
        gate = None if guard is None else guard.observe(loss)
        self.optimizer.apply(self.params, self.grads, gate=gate, backend=self.backend)
        return loss, acc

    def compute_gradients(self, x, y, training: bool = False):
        """The loss and dL/dparams on one batch, without updating anything.

        Returns ``(loss, grads)``: a float and host arrays in :meth:`get_weights` order.
        ``training=True`` applies dropout (a fresh mask); the default leaves it off.
        """
        if self.loss is None:
            self.loss = losses_module.CategoricalCrossentropy()
        xb = self._to_backend(x)
        yb = self._check_targets(y, xb.shape[0])
        loss, _, _ = self._forward_backward(xb, yb, training=training)
        return float(loss), [self.backend.to_numpy(g) for g in self.grads]

    def predict(self, x, batch_size: int = 32) -> np.ndarray:
        """The model's outputs (class probabilities for the tutorial) for ``x``, as a host array, by batches."""
        self._require_built()
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        xb = self._to_backend(x)
        outs = [self.backend.to_numpy(self.forward(xb[i:i + batch_size], training=False))
                for i in range(0, xb.shape[0], batch_size)]
        return np.concatenate(outs)

    def predict_classes(self, x, batch_size: int = 32) -> np.ndarray:
        """The most probable class of each sample: ``argmax(predict(x), axis=-1)``."""
        return self.predict(x, batch_size=batch_size).argmax(axis=-1)

    def trace(self, x, y, update: bool = True):
        """One training step on ``(x, y)``, recorded layer by layer (shapes, formulas, matrix products,
        multiply-adds, time, statistics of activations and gradients, each parameter's gradient norm and relative
        update). ``print()`` the returned :class:`~minicnn.trace.Trace`, or ``.to_dict()`` it."""
        from .trace import trace_step

        return trace_step(self, x, y, update=update)

    # --- training and evaluating (the loop lives in minicnn/training.py) ------------------------------
    def fit(self, x, y, batch_size: int = 32, epochs: int = 1, verbose: int = 1, validation_split: float = 0.0,
            validation_data=None, shuffle: bool = True, callbacks=None, checkpoint_dir=None, resume: bool = False,
            nan_guard: bool = True):
        """Train for ``epochs`` passes over ``(x, y)`` in batches of ``batch_size``, Keras's way.

        ``validation_split`` holds out the LAST fraction of the samples (before shuffling); ``validation_data``
        gives a validation set instead. Each epoch reshuffles the training samples and keeps the last partial
        batch. ``verbose``: 1 a live progress bar, 2 one line per epoch, 0 nothing.

        Returns a :class:`~minicnn.training.History`: ``history.history["loss"|"accuracy"|"val_loss"|
        "val_accuracy"|"seconds"]`` hold one value per epoch; ``history.params == {"verbose", "epochs", "steps"}``.

        ``checkpoint_dir``: write a checkpoint there at the end of every epoch (weights, optimizer state, epoch,
        history); ``resume=True`` continues from it, ``epochs`` still counting the total. ``nan_guard``: stop at
        once, keeping the last good weights, when the loss becomes NaN or infinite (``history.stopped``
        says where). Ctrl-C stops cleanly too, writing (with ``checkpoint_dir``) the state the interrupted epoch
        started from, so that resuming redoes that epoch exactly.
        """
        from .training import fit

        return fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                   validation_split=validation_split, validation_data=validation_data, shuffle=shuffle,
                   callbacks=callbacks, checkpoint_dir=checkpoint_dir, resume=resume, nan_guard=nan_guard)

    def evaluate(self, x, y, batch_size: int = 32, verbose: int = 1) -> list[float]:
        """``[loss, accuracy]`` on ``(x, y)``, dropout off, in batches."""
        from .training import _check_positive_int, _Progress, evaluate_arrays

        self._require_compiled("evaluate")
        batch_size = _check_positive_int(batch_size, "batch_size")
        xb = self._to_backend(x)
        yb = self._check_targets(y, xb.shape[0])
        progress = _Progress(verbose, 1, steps=-(-xb.shape[0] // batch_size))
        progress.begin()
        loss, acc = evaluate_arrays(self, xb, yb, batch_size, progress)
        result = [float(loss), float(acc)]
        progress.end(None, {"loss": result[0], "accuracy": result[1]})
        return result

    # --- saving -------------------------------------------------------------------------------------
    def named_weights(self) -> list[tuple[str, np.ndarray]]:
        """``("<layer name>/<kernel|bias>", host array)`` for every parameter, in Keras's order."""
        self._require_built()
        return [(f"{layer.name}/{key}", self.backend.to_numpy(p))
                for layer in self.layers for key, p in layer.params.items()]

    def set_named_weights(self, arrays: dict, source: str = "weights") -> None:
        """Set every parameter from ``{"<layer>/<key>": array}``; a missing name or a wrong shape is an error
        that names it (``source`` says where the arrays came from)."""
        self._require_built()
        weights = []
        for layer in self.layers:
            for key, p in layer.params.items():
                name = f"{layer.name}/{key}"
                if name not in arrays:
                    raise ValueError(f"{source}: no weights for {name!r} (it holds {sorted(arrays)})")
                if tuple(arrays[name].shape) != tuple(p.shape):
                    raise ValueError(f"{source}: {name!r} has shape {tuple(arrays[name].shape)} in the file, "
                                     f"the model expects {tuple(p.shape)}")
                weights.append(arrays[name])
        self.set_weights(weights)

    def save_weights(self, path) -> None:
        """Save every parameter to a ``.npz`` file, keyed ``<layer name>/<kernel|bias>``, written atomically."""
        from .utils import atomic_write

        arrays = dict(self.named_weights())
        arrays["__layers__"] = np.array([f"{layer.name}:{type(layer).__name__}" for layer in self.layers])
        atomic_write(path, lambda fh: np.savez(fh, **arrays))

    def load_weights(self, path) -> None:
        """Load parameters saved by :meth:`save_weights` (from any backend); names and shapes must match."""
        self._require_built()
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a minicnn weights file ({err})") from err
        with data:
            self.set_named_weights({k: data[k] for k in data.files if k != "__layers__"}, str(path))

    # --- showing ------------------------------------------------------------------------------------
    def summary(self, print_fn=print) -> str:
        """Print (and return) the layer table as Keras 2 printed it for the tutorial."""
        self._require_built()
        widths = (36, 30, 14)
        line = sum(widths)

        def row(*cells):
            return "".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

        lines = [f'Model: "{self.name}"', "_" * line, row("Layer (type)", "Output Shape", "Param #"), "=" * line]
        for layer in self.layers:
            shape = "(None, " + ", ".join(str(d) for d in layer.output_shape) + ")"
            lines.append(row(f"{layer.name} ({type(layer).__name__})", shape, layer.count_params()))
        total = self.count_params()
        lines += ["=" * line, f"Total params: {total:,}", f"Trainable params: {total:,}",
                  "Non-trainable params: 0", "_" * line]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        return f"<Sequential {self.name!r}: {len(self.layers)} layers, backend {self.backend.name!r}>"
