"""2-D average pooling, NHWC.

Forward, with windows of ``PH x PW`` moving by strides ``(sh, sw)``; with ``"same"`` padding the padded cells are
neither added nor counted (Keras/TensorFlow's rule), so each window divides by the number of REAL cells it covers::

    count[oh, ow]   = #{(i, j) : i < PH, j < PW, (oh*sh + i - pad_top, ow*sw + j - pad_left) inside the image}
    y[n, oh, ow, c] = (1 / count[oh, ow]) * sum over those (i, j) of x[n, oh*sh + i - pad_top, ow*sw + j - pad_left, c]

Backward: y is linear in x, each real cell of a window weighing ``1 / count``; so each output gradient is spread
evenly over its window's cells, and a pixel covered by several (overlapping) windows receives the sum::

    dx[n, h, w, c] = sum over windows (oh, ow) that cover (h, w) of dy[n, oh, ow, c] / count[oh, ow]
"""

from __future__ import annotations

from .pooling import Pooling2D


class AveragePooling2D(Pooling2D):
    """Keras's ``AveragePooling2D``; ``strides`` defaults to ``pool_size`` (non-overlapping windows). (Keras 3 requires
    ``pool_size``; here it defaults to ``(2, 2)``, as for ``MaxPooling2D``.)

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.AveragePooling2D((3, 3), strides=2, padding="same",
        ...                                                   input_shape=(7, 7, 4))])
        >>> model.layers[0].output_shape
        (4, 4, 4)
    """

    def forward(self, x, training=False):
        self.x_shape = x.shape
        return self.backend.avgpool_forward(x, self.window, out=self.buffer("y", (x.shape[0],) + self.output_shape))

    def backward(self, grad):
        return self.backend.avgpool_backward(grad, self.x_shape, self.window, out=self.buffer("grad_x", self.x_shape))

    def describe(self) -> dict:
        return {
            "forward": f"Y = mean over each {self.pool_size[0]}x{self.pool_size[1]} window (stride "
            f"{self.strides[0]}x{self.strides[1]}; padding not counted)",
            "backward": "dX = dY / count spread over each window's cells",
            "products": "",
        }
