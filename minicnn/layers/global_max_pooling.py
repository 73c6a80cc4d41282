"""Global max pooling: the maximum of each channel over all ``H x W`` pixels.

Forward, for x of shape (N, H, W, C)::

    y[n, c] = max_{h, w} x[n, h, w, c]

Backward: the maximum moves with the pixels that reach it. When several pixels tie for it, the gradient is SHARED
equally between them: that is TensorFlow's gradient of ``reduce_max`` (which Keras's ``GlobalMaxPooling2D`` uses),
unlike its max-pooling windows, which send it all to the first maximum::

    m[n, h, w, c]  = [x[n, h, w, c] == y[n, c]]
    dx[n, h, w, c] = dy[n, c] * m[n, h, w, c] / sum_{h', w'} m[n, h', w', c]
"""

from __future__ import annotations

from .global_pooling import GlobalPooling2D


class GlobalMaxPooling2D(GlobalPooling2D):
    """Keras's ``GlobalMaxPooling2D``: ``(N, H, W, C) -> (N, C)`` (``(N, 1, 1, C)`` with ``keepdims=True``).

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.GlobalMaxPooling2D(keepdims=True, input_shape=(5, 5, 8))])
        >>> model.layers[0].output_shape
        (1, 1, 8)
    """

    def forward(self, x, training=False):
        self.x = x
        self.x_shape = x.shape
        out = self.buffer("y", (x.shape[0],) + self.output_shape)
        self.y = self.backend.xp.max(
            x, axis=(1, 2), keepdims=True, out=None if out is None else out.reshape(x.shape[0], 1, 1, x.shape[-1])
        )
        return self.y if self.keepdims else self.y.reshape(x.shape[0], x.shape[-1])

    def backward(self, grad):
        xp = self.backend.xp
        n, _, _, c = self.x_shape
        dx = self.gradient_buffer()
        xp.equal(self.x, self.y, out=dx)  # m: 1 at every maximum, 0 elsewhere
        ties = dx.sum(axis=(1, 2), keepdims=True)  # how many pixels share each maximum (>= 1)
        dx *= grad.reshape(n, 1, 1, c) / ties
        return dx

    def describe(self) -> dict:
        return {
            "forward": "Y = max of X over height and width, per channel",
            "backward": "dX = dY at the maximum (shared equally between ties), 0 elsewhere",
            "products": "",
        }
