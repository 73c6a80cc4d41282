"""Global average pooling: the mean of each channel over all ``H x W`` pixels.

Forward, for x of shape (N, H, W, C)::

    y[n, c] = (1 / (H*W)) * sum_{h, w} x[n, h, w, c]

Backward: every pixel of a channel weighs ``1 / (H*W)`` in its mean::

    dx[n, h, w, c] = dy[n, c] / (H*W)
"""

from __future__ import annotations

from .global_pooling import GlobalPooling2D


class GlobalAveragePooling2D(GlobalPooling2D):
    """Keras's ``GlobalAveragePooling2D``: ``(N, H, W, C) -> (N, C)`` (``(N, 1, 1, C)`` with ``keepdims=True``).

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.GlobalAveragePooling2D(input_shape=(5, 5, 8))])
        >>> model.layers[0].output_shape
        (8,)
    """

    def forward(self, x, training=False):
        self.x_shape = x.shape
        out = self.buffer("y", (x.shape[0],) + self.output_shape)
        return self.backend.xp.mean(x, axis=(1, 2), keepdims=self.keepdims, out=out)

    def backward(self, grad):
        n, h, w, c = self.x_shape
        dx = self.gradient_buffer()
        dx[...] = grad.reshape(n, 1, 1, c) / (h * w)
        return dx

    def describe(self) -> dict:
        return {
            "forward": "Y = mean of X over height and width, per channel",
            "backward": "dX = dY / (H*W) at every pixel",
            "products": "",
        }
