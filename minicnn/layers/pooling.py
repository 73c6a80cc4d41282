"""2-D max pooling, NHWC.

Forward, with windows of ``PH x PW`` moving by strides ``(sh, sw)`` (padding, for ``"same"``, counts as -inf)::

    y[n, oh, ow, c] = max_{i < PH, j < PW} x_pad[n, oh*sh + i, ow*sw + j, c]
    a[n, oh, ow, c] = i*PW + j of the FIRST maximum (row-major order in the window; TensorFlow's rule)

Backward: each output gradient goes to the single input pixel that won its window; when windows
overlap, a pixel that wins several windows receives the sum::

    dx[n, h, w, c] = sum over windows (oh, ow) whose winner is (h, w) of dy[n, oh, ow, c]
"""

from __future__ import annotations

from ..backend import make_window
from .base import Layer
from .conv2d import _check_padding, _pair


class MaxPooling2D(Layer):
    """Keras's ``MaxPooling2D``; ``strides`` defaults to ``pool_size`` (non-overlapping windows).

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.MaxPooling2D((2, 2), input_shape=(24, 24, 32))])
        >>> model.layers[0].output_shape
        (12, 12, 32)
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", input_shape=None, name=None):
        super().__init__(name=name, input_shape=input_shape)
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _pair(strides, "strides")
        self.padding = _check_padding(padding)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"MaxPooling2D {self.name!r} expects inputs of shape (height, width, channels), "
                             f"got {tuple(input_shape)}")
        h, w, c = input_shape
        self.window = make_window(h, w, self.pool_size, self.strides, self.padding)
        if self.window.out_h <= 0 or self.window.out_w <= 0:
            raise ValueError(f"layer {self.name!r}: pool {self.pool_size} with padding {self.padding!r} "
                             f"does not fit its input {h}x{w}")
        return (self.window.out_h, self.window.out_w, c)

    def forward(self, x, training=False):
        self.x_shape = x.shape
        out_shape = (x.shape[0],) + self.output_shape
        y, self.argmax = self.backend.maxpool_forward(x, self.window, out=self._buffer("y", out_shape),
                                                      argmax_out=self._buffer("argmax", out_shape, "int32"))
        return y

    def backward(self, grad):
        return self.backend.maxpool_backward(grad, self.argmax, self.x_shape, self.window,
                                             out=self._buffer("grad_x", self.x_shape))

    def describe(self) -> dict:
        return {"forward": f"Y = max over each {self.pool_size[0]}x{self.pool_size[1]} window (stride "
                           f"{self.strides[0]}x{self.strides[1]}); remember where",
                "backward": "dX = dY routed to the first maximum of each window", "products": ""}

    def get_config(self):
        return {"name": self.name, "pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}
