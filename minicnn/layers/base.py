"""The Layer base class: what every layer has in common."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..checks import check_positive_int

if TYPE_CHECKING:
    from ..annotations import Shape


class HookHandle:
    """Returned by ``register_*_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, table: dict, key: int):
        self._table, self._key = table, key

    def remove(self) -> None:
        self._table.pop(self._key, None)


class Layer:
    """A layer: ``forward(x, training)`` computes its output, ``backward(grad)`` the gradient of the loss
    with respect to its input, given the gradient with respect to its output.

    Weights: ``layer.params[k]`` holds every weight by name, in the order Keras keeps them (kernel, bias; for a
    layer with state that is not trained, such as a moving mean, the trainable weights first). Each is declared
    with :meth:`add_weight` as trainable or not. After ``backward``, the gradient of each trainable weight is in
    ``layer.grads[k]`` (same shape), so a learner can look at it. ``layer.trainable = False`` freezes the layer:
    its weights count as non-trainable and no optimizer changes them (Keras's rule).

    Shapes exclude the batch axis: ``input_shape == (28, 28, 1)`` means inputs of shape ``(N, 28, 28, 1)``.

    ``reuse_buffers``: a layer on its own returns fresh arrays. Inside a model (which sets this to True) it
    writes its outputs and gradients into buffers it keeps, allocated once per shape, so that a training step
    allocates no large array; the next call then overwrites them: copy what you want to keep.
    """

    reuse_buffers = False

    def __init__(self, name: str | None = None, input_shape: Shape | None = None):
        self.name = name
        self.input_shape = (
            None
            if input_shape is None
            else tuple(check_positive_int(d, f"input_shape {tuple(input_shape)!r}: each size") for d in input_shape)
        )
        self.output_shape = None
        self.backend = None
        self.dtype = None
        self.trainable = True
        self.params: dict = {}
        self.grads: dict = {}
        self._trains: dict = {}  # weight name -> declared trainable
        self._scratch_buffers: dict = {}
        self._forward_hooks: dict = {}
        self._backward_hooks: dict = {}
        self._next_hook_id = 0

    # --- building ---------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.output_shape is not None

    def build(self, input_shape, backend, dtype, rng: np.random.Generator):
        """Fix the input shape, create the parameters (drawn from ``rng`` on the host, then moved to
        ``backend``) and return the output shape."""
        self.input_shape = tuple(int(d) for d in input_shape)
        self.backend = backend
        self.dtype = np.dtype(dtype)
        self.params, self.grads, self._trains, self._scratch_buffers = {}, {}, {}, {}
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.create_params(rng)
        return self.output_shape

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape`` (batch axis excluded)."""
        return input_shape

    def create_params(self, rng):
        """Create the weights with :meth:`add_weight` (layers with weights override this)."""

    def add_weight(self, name: str, value: np.ndarray, trainable: bool = True):
        """Register a weight (a host array, moved to the backend), Keras's ``add_weight``: a trainable one gets a
        zero gradient in ``self.grads[name]``; a non-trainable one (state such as a moving mean) gets none."""
        self.params[name] = self.backend.asarray(value.astype(self.dtype))
        self._trains[name] = bool(trainable)
        if trainable:
            self.grads[name] = self.backend.xp.zeros_like(self.params[name])

    add_param = add_weight  # the earlier name

    def scratch(self, key: str, shape, dtype=None):
        """A work buffer of this layer, allocated once per shape and reused across steps."""
        dtype = self.dtype if dtype is None else dtype
        buf = self._scratch_buffers.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = self.backend.xp.empty(shape, dtype=dtype)
            self._scratch_buffers[key] = buf
        return buf

    def buffer(self, key: str, shape, dtype=None):
        """Where to write an output or a gradient: a reused buffer inside a model, else None (allocate)."""
        return self.scratch(key, shape, dtype) if self.reuse_buffers else None

    # --- computing ----------------------------------------------------------------------------------
    def forward(self, x, training: bool = False):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    # --- hooks: watching a layer at work -------------------------------------------------------------
    def register_forward_hook(self, fn) -> HookHandle:
        """Call ``fn(layer, input, output)`` after every forward pass run by a model; ``.remove()`` the returned
        handle to stop. The arrays are the layer's own (reused between steps): copy what you keep."""
        return self._add_hook(self._forward_hooks, fn)

    def register_backward_hook(self, fn) -> HookHandle:
        """Call ``fn(layer, grad_input, grad_output)`` after every backward pass run by a model: ``grad_output`` is
        dL/d(output) as received (for the last layer under the fused softmax + cross-entropy gradient, dL/dz),
        ``grad_input`` is dL/d(input) as returned (None for a first layer that skips it in training)."""
        return self._add_hook(self._backward_hooks, fn)

    def _add_hook(self, table, fn):
        if not callable(fn):
            raise TypeError(f"a hook must be callable, got {type(fn).__name__}")
        self._next_hook_id += 1
        table[self._next_hook_id] = fn
        return HookHandle(table, self._next_hook_id)

    def run_forward(self, x, training: bool = False):
        """``forward`` then the forward hooks (what a model calls)."""
        y = self.forward(x, training=training)
        for fn in list(self._forward_hooks.values()):
            fn(self, x, y)
        return y

    def run_backward(self, grad, linear: bool = False):
        """``backward`` (or ``backward_linear`` when ``grad`` is already dL/dz) then the backward hooks."""
        grad_input = self.backward_linear(grad) if linear else self.backward(grad)
        for fn in list(self._backward_hooks.values()):
            fn(self, grad_input, grad)
        return grad_input

    # --- inspecting ---------------------------------------------------------------------------------
    def multiply_adds(self) -> int:
        """Multiply-adds of the forward pass per image (the matrix products; 0 for layers without any)."""
        return 0

    def describe(self) -> dict:
        """What the layer computes, for a learner: one-line formulas of the forward and backward passes and the
        shapes of the matrix products they run (per batch of N), as strings."""
        return {"forward": "y = f(x)", "backward": "dX = f'(x) * dY", "products": ""}

    # --- weights ------------------------------------------------------------------------------------
    def weight_names(self, trainable: bool | None = None) -> list[str]:
        """Names of the weights in Keras's order (declared trainable first): all of them (``trainable=None``),
        those the optimizer updates (``True``: none when the layer is frozen) or the others (``False``)."""
        declared = [k for k in self.params if self._trains[k]] + [k for k in self.params if not self._trains[k]]
        if trainable is None:
            return declared
        return [k for k in declared if (self.trainable and self._trains[k]) == trainable]

    @property
    def weights(self) -> list:
        """Every weight in Keras's order (backend arrays): trainable ones, then the others."""
        return [self.params[k] for k in self.weight_names()]

    @property
    def trainable_weights(self) -> list:
        return [self.params[k] for k in self.weight_names(trainable=True)]

    @property
    def non_trainable_weights(self) -> list:
        return [self.params[k] for k in self.weight_names(trainable=False)]

    def count_params(self) -> int:
        return int(sum(int(np.prod(p.shape)) for p in self.params.values()))

    def count_trainable_params(self) -> int:
        return int(sum(int(np.prod(p.shape)) for p in self.trainable_weights))

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self):
        shape = f" -> {self.output_shape}" if self.built else ""
        return f"<{type(self).__name__} {self.name!r}{shape}>"
