"""``Sequential``: a stack of layers and their weights, trained by :class:`~minicnn.training.Trainer`.

One training step (``train_on_batch``, the trainer's)::

    a_0 = x;  a_l = layer_l.forward(a_{l-1})          forward, layer by layer
    L   = loss(a_L, y)
    g_L = dL/da_L  (fused: dL/dz_L = (p - y)/N for softmax + cross-entropy)
    g_{l-1} = layer_l.backward(g_l)                   backward, in reverse order
    optimizer.apply(trainable weights, gradients)      each trainable weight updated from its gradient
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from .backend import Backend, get_backend
from .checks import check_positive_int
from .layers.base import Layer
from .nan_guard import NonFiniteLoss  # noqa: F401  (where earlier code imported it from)
from .seeding import resolve_seed
from .training import NotCompiledError, Trainer  # noqa: F401
from .weight_files import LAYERS_KEY, check_array, check_layers, read_npz, select_named

if TYPE_CHECKING:
    from .annotations import ArrayLike, PathLike, Shape


def _snake_case(name: str) -> str:
    """Keras's layer naming: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


class Sequential(Trainer):
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

    def __init__(
        self,
        layers: list[Layer] | None = None,
        name: str = "sequential",
        dtype: str = "float32",
        seed: int | None = None,
        backend: str | Backend | None = None,
    ):
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
        layer.reuse_buffers = True  # a model's layers write into buffers kept across steps (see Layer)

    def build(self, input_shape: Shape) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis excluded), drawing initial weights."""
        shape = tuple(check_positive_int(d, f"input_shape {tuple(input_shape)!r}: each size") for d in input_shape)
        if self.built:  # Keras's rule: building again is a no-op (it must not draw new weights)
            if shape != tuple(self.layers[0].input_shape):
                raise ValueError(
                    f"the model is built for inputs of shape {tuple(self.layers[0].input_shape)}, "
                    f"not {shape}: make a new model for other inputs"
                )
            return
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
            raise ValueError(
                "the model is not built: give the first layer an input_shape=(...) or call model.build(input_shape)"
            )

    @property
    def input_shape(self):
        self._require_built()
        return self.layers[0].input_shape

    @property
    def output_shape(self):
        self._require_built()
        return self.layers[-1].output_shape

    # --- weights ------------------------------------------------------------------------------------
    def _slots(self, trainable: bool | None = None) -> list[tuple]:
        """``(layer, name)`` of every weight in Keras's order (per layer: trainable, then the others), or only the
        trainable ones (``True``) or the others (``False``)."""
        return [(layer, key) for layer in self.layers for key in layer.weight_names(trainable)]

    @property
    def weights(self) -> list:
        """Every weight (backend arrays) in Keras's order: per layer, the trainable ones, then the others."""
        return [layer.params[key] for layer, key in self._slots()]

    @property
    def trainable_weights(self) -> list:
        """The weights the optimizer updates (those of layers with ``trainable`` True, declared trainable)."""
        return [layer.params[key] for layer, key in self._slots(True)]

    @property
    def non_trainable_weights(self) -> list:
        """The other weights: state such as moving means, and every weight of a frozen layer."""
        return [layer.params[key] for layer, key in self._slots(False)]

    @property
    def gradients(self) -> list:
        """The gradients of :attr:`trainable_weights` from the last backward pass, same order."""
        return [layer.grads[key] for layer, key in self._slots(True)]

    params = weights  # the earlier names
    grads = gradients

    def count_params(self) -> int:
        self._require_built()
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self) -> list[np.ndarray]:
        """Host copies of every weight, in Keras's order (Keras's ``get_weights()`` loads as it is)."""
        self._require_built()
        return [self.backend.to_numpy(p) for p in self.weights]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Set every weight from arrays in Keras's order; shapes must match."""
        self._require_built()
        weights = list(weights)
        slots = self._slots()
        if len(weights) != len(slots):
            raise ValueError(f"set_weights: the model has {len(slots)} weight arrays, got {len(weights)}")
        checked = []  # every array checked before the first is assigned: all or nothing
        for (layer, key), w in zip(slots, weights):
            w = check_array(w, f"layer {layer.name!r} {key}", "set_weights")
            if tuple(w.shape) != tuple(layer.params[key].shape):
                raise ValueError(
                    f"set_weights: layer {layer.name!r} {key} has shape "
                    f"{tuple(layer.params[key].shape)}, got {tuple(w.shape)}"
                )
            checked.append(w)
        for (layer, key), w in zip(slots, checked):
            layer.params[key][...] = self.backend.asarray(w, dtype=self.dtype)

    # --- the computation ----------------------------------------------------------------------------
    def forward(self, x, training: bool = False):
        """Run every layer's forward on a backend array ``x``; returns the output (backend array).

        The output lives in the last layer's reused buffer: the next call overwrites it (``predict`` copies)."""
        for layer in self.layers:
            x = layer.run_forward(x, training=training)
        return x

    def backward(self, grad, from_logits: bool = False, input_gradient: bool = True):
        """Run every layer's backward, last to first. With ``from_logits``, ``grad`` is dL/dz of the last layer
        (below its softmax). Returns dL/dx for the model's input (None with ``input_gradient=False``, which lets the
        first layer skip that work)."""
        layers = self.layers
        first = layers[0]
        if hasattr(first, "compute_input_gradient"):
            first.compute_input_gradient = input_gradient
        if from_logits:
            grad = layers[-1].run_backward(grad, linear=True)
            layers = layers[:-1]
        for layer in reversed(layers):
            grad = layer.run_backward(grad)
        return grad

    @property
    def output_activation(self):
        """The last layer's activation when the backward pass can start below it (``backward_linear``), else None."""
        last = self.layers[-1]
        return getattr(last, "activation", None) if hasattr(last, "backward_linear") else None

    def loss_gradient_buffer(self, shape):
        """Where the loss writes its gradient in a training step: the last layer's reused buffer."""
        return self.layers[-1].buffer("grad_z", shape)

    def regularized_layers(self) -> list:
        """The layers whose weights carry penalties (``kernel_regularizer=``, ``bias_regularizer=``)."""
        return [layer for layer in self.layers if hasattr(layer, "weight_regularizers") and layer.weight_regularizers()]

    def start_epoch(self, epoch: int) -> None:
        """Restart every random stream at a point fixed by (seed, epoch) (dropout masks; see Dropout.reseed)."""
        for layer in self.layers:
            if hasattr(layer, "reseed"):
                layer.reseed(epoch)

    def predict(self, x: ArrayLike, batch_size: int = 32) -> np.ndarray:
        """The model's outputs (class probabilities for the tutorial) for ``x``, as a host array, by batches."""
        self._require_built()
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        xb = self.prepare_inputs(x)
        outs = [
            self.backend.to_numpy(self.forward(xb[i : i + batch_size], training=False))
            for i in range(0, xb.shape[0], batch_size)
        ]
        return np.concatenate(outs)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """The layer called ``name``, or the one at position ``index`` (Keras's ``get_layer``: give one of them)."""
        if (name is None) == (index is None):
            raise ValueError("get_layer needs a layer name or an index (one of them)")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer: index {index} is out of range: the model has {len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; the layers are {', '.join(lay.name for lay in self.layers)}")

    def predict_classes(self, x: ArrayLike, batch_size: int = 32) -> np.ndarray:
        """The most probable class of each sample: ``argmax(predict(x), axis=-1)``."""
        return self.predict(x, batch_size=batch_size).argmax(axis=-1)

    def trace(self, x, y, update: bool = True):
        """One training step on ``(x, y)``, recorded layer by layer (shapes, formulas, matrix products,
        multiply-adds, time, statistics of activations and gradients, each parameter's gradient norm and relative
        update). ``print()`` the returned :class:`~minicnn.trace.Trace`, or ``.to_dict()`` it."""
        from .trace import trace_step

        return trace_step(self, x, y, update=update)

    # --- saving -------------------------------------------------------------------------------------
    def named_weights(self) -> list[tuple[str, np.ndarray]]:
        """``("<layer name>/<weight name>", host array)`` for every weight, in Keras's order."""
        self._require_built()
        return [(f"{layer.name}/{key}", self.backend.to_numpy(layer.params[key])) for layer, key in self._slots()]

    def set_named_weights(self, arrays: dict, source: str = "weights", strict: bool = True) -> None:
        """Set every parameter from ``{"<layer>/<key>": array}``; a missing or unknown name, a wrong shape, a
        non-numeric or non-finite array is an error that names it (``source`` says where the arrays came from),
        raised before any weight changes. ``strict=False`` sets the weights that match and leaves the others."""
        self._require_built()
        slots = self._slots()
        chosen = select_named(self.named_shapes(), arrays, source, strict)
        self.set_weights(
            [self.backend.to_numpy(layer.params[key]) if a is None else a for (layer, key), a in zip(slots, chosen)]
        )

    def named_shapes(self) -> list[tuple[str, tuple]]:
        """``("<layer name>/<weight name>", shape)`` for every weight, in Keras's order."""
        return [(f"{layer.name}/{key}", tuple(layer.params[key].shape)) for layer, key in self._slots()]

    def save_weights(self, path: PathLike) -> None:
        """Save every weight to a ``.npz`` file, keyed ``<layer name>/<weight name>``, written atomically."""
        from .utils import atomic_write

        arrays = dict(self.named_weights())
        arrays[LAYERS_KEY] = np.array([f"{layer.name}:{type(layer).__name__}" for layer in self.layers])
        atomic_write(path, lambda fh: np.savez(fh, **arrays))

    def load_weights(self, path: PathLike, strict: bool = True) -> None:
        """Load parameters saved by :meth:`save_weights` (from any backend); names, shapes and the layer list must
        match (``strict=False``: load the weights that match, as Keras's ``skip_mismatch``). The whole file is read
        and checked first: a bad file changes nothing (see minicnn.weight_files)."""
        self._require_built()
        arrays = read_npz(path, "weights file")
        recorded = arrays.pop(LAYERS_KEY, None)
        select_named(self.named_shapes(), arrays, str(path), strict)  # tensors first: their errors are clearer
        if strict and recorded is not None:
            check_layers(recorded, self.layers, str(path))
        self.set_named_weights(arrays, str(path), strict)

    def save(self, path) -> None:
        """Save the whole model (configuration, weights, compile settings) to a Keras 3 ``.keras`` file."""
        from .saving import save_model

        save_model(self, path)

    def to_json(self, **kwargs) -> str:
        """The model's Keras 3 configuration as JSON; :func:`minicnn.models.model_from_json` reads it back."""
        from .saving import model_to_json

        return model_to_json(self, **kwargs)

    def export(self, path, format: str = "onnx", opset: int | None = None) -> None:
        """Write the model, for inference, as an ONNX graph (Keras's ``format="onnx"``; see minicnn.onnx_export)."""
        from .onnx_export import export_onnx

        export_onnx(self, path, format=format, opset=opset)

    # --- showing ------------------------------------------------------------------------------------
    def summary(self, print_fn=print) -> str:
        """Print (and return) the layer table as Keras 2 printed it for the tutorial."""
        self._require_built()
        names = [f"{layer.name} ({type(layer).__name__})" for layer in self.layers]
        widths = (max(36, 2 + max(map(len, names))), 30, 14)  # Keras 2's 36, widened for longer names
        line = sum(widths)

        def row(*cells):
            return "".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

        lines = [f'Model: "{self.name}"', "_" * line, row("Layer (type)", "Output Shape", "Param #"), "=" * line]
        for layer, name in zip(self.layers, names):
            shape = "(None, " + ", ".join(str(d) for d in layer.output_shape) + ")"
            lines.append(row(name, shape, layer.count_params()))
        total = self.count_params()
        trainable = sum(layer.count_trainable_params() for layer in self.layers)
        lines += [
            "=" * line,
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            "_" * line,
        ]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        return f"<Sequential {self.name!r}: {len(self.layers)} layers, backend {self.backend.name!r}>"
