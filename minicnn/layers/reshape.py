"""Reshape: the same values in another shape (the batch axis kept), in C (row-major) order, as Keras.

Forward: ``y = x.reshape(N, *target_shape)``, with at most one ``-1`` in ``target_shape`` standing for whatever size
makes the element counts agree. Backward: the inverse reshape, ``dx = dy.reshape(x.shape)``: each value keeps its
gradient, only the shape changes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .base import Layer

if TYPE_CHECKING:
    from ..annotations import Shape


class Reshape(Layer):
    """Keras's ``Reshape(target_shape)``.

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.Reshape((-1, 4), input_shape=(6, 2))])
        >>> model.layers[0].output_shape
        (3, 4)
    """

    def __init__(self, target_shape: int | Shape, input_shape: Shape | None = None, name: str | None = None):
        super().__init__(name=name, input_shape=input_shape)
        if isinstance(target_shape, int) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (tuple, list)) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in target_shape
        ):
            raise TypeError(f"target_shape must be a tuple of ints (the batch axis excluded), got {target_shape!r}")
        target_shape = tuple(target_shape)
        if sum(d == -1 for d in target_shape) > 1:
            raise ValueError(
                f"target_shape may hold at most one -1 (a size inferred from the input), got {target_shape}"
            )
        if any(d <= 0 and d != -1 for d in target_shape):
            raise ValueError(f"target_shape must hold positive sizes (or one -1), got {target_shape}")
        self.target_shape = target_shape

    def compute_output_shape(self, input_shape):
        size, known = math.prod(input_shape), math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(
                    f"Reshape {self.name!r}: cannot reshape inputs of shape {tuple(input_shape)} "
                    f"({size} values) to {self.target_shape}: {size} is not a multiple of {known}"
                )
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if size != known:
            raise ValueError(
                f"Reshape {self.name!r}: cannot reshape inputs of shape {tuple(input_shape)} ({size} "
                f"values) to {self.target_shape} ({known} values)"
            )
        return self.target_shape

    def forward(self, x, training=False):
        self.x_shape = x.shape
        return x.reshape((x.shape[0],) + self.output_shape)

    def backward(self, grad):
        return grad.reshape(self.x_shape)

    def describe(self) -> dict:
        return {
            "forward": f"Y = X.reshape(N, {', '.join(map(str, self.output_shape))})",
            "backward": "dX = dY.reshape(X's shape)",
            "products": "",
        }

    def get_config(self):
        return {"name": self.name, "target_shape": self.target_shape}
