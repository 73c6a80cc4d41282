"""What the 2-D pooling layers share: a window of ``pool_size`` moving by ``strides`` over each channel of an
NHWC image, with ``"valid"`` or ``"same"`` padding (the geometry of :mod:`minicnn.backend.geometry`).

A pooling layer has no weights; it reduces each window of each channel to one value (its maximum for
``MaxPooling2D``) and routes the gradient back through that reduction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backend.geometry import check_padding, pair, window_over
from .base import Layer

if TYPE_CHECKING:
    from ..annotations import IntPair, Shape


class Pooling2D(Layer):
    """The base of the 2-D pooling layers: arguments, output shape (``self.window``) and configuration; a
    subclass writes ``forward`` and ``backward``. ``strides`` defaults to ``pool_size``."""

    def __init__(
        self,
        pool_size: IntPair = (2, 2),
        strides: IntPair | None = None,
        padding: str = "valid",
        input_shape: Shape | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name, input_shape=input_shape)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")
        self.padding = check_padding(padding)

    def compute_output_shape(self, input_shape):
        self.window = window_over(
            input_shape, self.pool_size, self.strides, self.padding, type(self).__name__, self.name, what="pool"
        )
        return (self.window.out_h, self.window.out_w, input_shape[-1])

    def get_config(self):
        return {"name": self.name, "pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}
