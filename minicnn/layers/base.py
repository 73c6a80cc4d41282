"""The Layer base class: what every layer has in common."""

from __future__ import annotations

import numpy as np


class Layer:
    """A layer: ``forward(x, training)`` computes its output, ``backward(grad)`` the gradient of the loss
    with respect to its input, given the gradient with respect to its output.

    After ``backward``, the gradient of each parameter ``layer.params[k]`` is in ``layer.grads[k]``
    (same shape), so a learner can look at it. Parameters are ordered as Keras orders them (kernel, bias).

    Shapes exclude the batch axis: ``input_shape == (28, 28, 1)`` means inputs of shape ``(N, 28, 28, 1)``.

    ``reuse_buffers``: a layer on its own returns fresh arrays. Inside a model (which sets this to True) it
    writes its outputs and gradients into buffers it keeps, allocated once per shape, so that a training step
    allocates no large array; the next call then overwrites them: copy what you want to keep.
    """

    reuse_buffers = False

    def __init__(self, name: str | None = None, input_shape=None):
        self.name = name
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.output_shape = None
        self.backend = None
        self.dtype = None
        self.params: dict = {}
        self.grads: dict = {}
        self._scratch_buffers: dict = {}

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
        self.params, self.grads, self._scratch_buffers = {}, {}, {}
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.create_params(rng)
        return self.output_shape

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape`` (batch axis excluded)."""
        return input_shape

    def create_params(self, rng):
        """Create ``self.params`` (layers with weights override this)."""

    def add_param(self, name: str, value: np.ndarray):
        """Register a parameter (a host array, moved to the backend) and its zero gradient."""
        self.params[name] = self.backend.asarray(value.astype(self.dtype))
        self.grads[name] = self.backend.xp.zeros_like(self.params[name])

    def _scratch(self, key: str, shape, dtype=None):
        """A work buffer of this layer, allocated once per shape and reused across steps."""
        dtype = self.dtype if dtype is None else dtype
        buf = self._scratch_buffers.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = self.backend.xp.empty(shape, dtype=dtype)
            self._scratch_buffers[key] = buf
        return buf

    def _buffer(self, key: str, shape, dtype=None):
        """Where to write an output or a gradient: a reused buffer inside a model, else None (allocate)."""
        return self._scratch(key, shape, dtype) if self.reuse_buffers else None

    # --- computing ----------------------------------------------------------------------------------
    def forward(self, x, training: bool = False):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    # --- inspecting ---------------------------------------------------------------------------------
    @property
    def weights(self) -> list:
        """The parameters in Keras order (backend arrays)."""
        return list(self.params.values())

    def count_params(self) -> int:
        return int(sum(int(np.prod(p.shape)) for p in self.params.values()))

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self):
        shape = f" -> {self.output_shape}" if self.built else ""
        return f"<{type(self).__name__} {self.name!r}{shape}>"
