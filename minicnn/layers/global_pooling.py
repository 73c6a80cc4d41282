"""What the global pooling layers share: each channel of an NHWC image reduced over all its pixels,
``(N, H, W, C) -> (N, C)``, or ``(N, 1, 1, C)`` with ``keepdims=True`` (Keras's argument, default False)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Layer

if TYPE_CHECKING:
    from ..annotations import Shape


class GlobalPooling2D(Layer):
    """The base of ``GlobalAveragePooling2D`` and ``GlobalMaxPooling2D``: ``keepdims``, the output shape and the
    configuration; a subclass writes ``forward`` and ``backward``."""

    def __init__(self, keepdims: bool = False, input_shape: Shape | None = None, name: str | None = None):
        super().__init__(name=name, input_shape=input_shape)
        if not isinstance(keepdims, bool):
            raise TypeError(f"keepdims must be True or False, got {keepdims!r}")
        self.keepdims = keepdims

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} expects inputs of shape (height, width, channels), "
                f"got {tuple(input_shape)}"
            )
        return (1, 1, input_shape[-1]) if self.keepdims else (input_shape[-1],)

    def gradient_buffer(self):
        """Where to write dX: the layer's reused buffer inside a model, else a fresh array."""
        out = self.buffer("grad_x", self.x_shape)
        return self.backend.xp.empty(self.x_shape, dtype=self.dtype) if out is None else out

    def get_config(self):
        return {"name": self.name, "keepdims": self.keepdims}
