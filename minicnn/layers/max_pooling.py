"""2-D max pooling, NHWC.

Forward, with windows of ``PH x PW`` moving by strides ``(sh, sw)`` (padding, for ``"same"``, counts as -inf)::

    y[n, oh, ow, c] = max_{i < PH, j < PW} x_pad[n, oh*sh + i, ow*sw + j, c]
    a[n, oh, ow, c] = i*PW + j of the FIRST maximum (row-major order in the window; TensorFlow's rule)

Backward: each output gradient goes to the single input pixel that won its window; when windows
overlap, a pixel that wins several windows receives the sum::

    dx[n, h, w, c] = sum over windows (oh, ow) whose winner is (h, w) of dy[n, oh, ow, c]
"""

from __future__ import annotations

from .pooling import Pooling2D


class MaxPooling2D(Pooling2D):
    """Keras's ``MaxPooling2D``; ``strides`` defaults to ``pool_size`` (non-overlapping windows).

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.MaxPooling2D((2, 2), input_shape=(24, 24, 32))])
        >>> model.layers[0].output_shape
        (12, 12, 32)
    """

    def forward(self, x, training=False):
        self.x_shape = x.shape
        out_shape = (x.shape[0],) + self.output_shape
        y, self.argmax = self.backend.maxpool_forward(
            x, self.window, out=self.buffer("y", out_shape), argmax_out=self.buffer("argmax", out_shape, "int32")
        )
        return y

    def backward(self, grad):
        return self.backend.maxpool_backward(
            grad, self.argmax, self.x_shape, self.window, out=self.buffer("grad_x", self.x_shape)
        )

    def describe(self) -> dict:
        return {
            "forward": f"Y = max over each {self.pool_size[0]}x{self.pool_size[1]} window (stride "
            f"{self.strides[0]}x{self.strides[1]}); remember where",
            "backward": "dX = dY routed to the first maximum of each window",
            "products": "",
        }
