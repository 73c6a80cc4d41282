"""Flatten: ``(N, H, W, C) -> (N, H*W*C)`` in (H, W, C) order, as Keras does with channels_last.

Backward is the inverse reshape: ``dx = dy.reshape(N, H, W, C)``.
"""

from __future__ import annotations

import math

from .base import Layer


class Flatten(Layer):
    """Keras's ``Flatten``: keeps the batch axis, joins all others."""

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad):
        return grad.reshape(self.x_shape)

    def describe(self) -> dict:
        return {"forward": "Y = X.reshape(N, H*W*C)", "backward": "dX = dY.reshape(N, H, W, C)", "products": ""}
