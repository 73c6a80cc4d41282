"""2-D convolution (cross-correlation, as in every deep-learning framework), NHWC, by im2col.

Forward, for an input ``x`` of shape ``(N, H, W, C)``, a kernel ``K`` of shape ``(KH, KW, C, F)`` and a bias
``b`` of shape ``(F,)``::

    z[n, oh, ow, f] = b[f] + sum_{i, j, c} x_pad[n, oh*sh + i, ow*sw + j, c] * K[i, j, c, f]
    y = activation(z)

As matrices (``M = N*OH*OW`` rows, one per output pixel; ``P = KH*KW*C`` columns, one per kernel tap)::

    X_col = im2col(x)          (M, P)
    Z     = X_col @ W + b      (M, F)     with W = K.reshape(P, F)

Backward, given ``dY = dL/dy`` of shape ``(N, OH, OW, F)``::

    dZ    = dY * activation'(z)                (M, F)
    dW    = X_col^T @ dZ                        (P, F)  -> reshaped to (KH, KW, C, F)
    db    = sum over rows of dZ                 (F,)
    dX    = col2im(dZ @ W^T)                    (N, H, W, C)

``col2im`` is the adjoint of ``im2col``: it adds each column entry back to the input pixel it was read from.

Each line above is one named backend kernel in :meth:`Conv2D.forward` and :meth:`Conv2D.backward_linear`. A
backend may fuse them (``backend.fuses_conv2d``: the Numba backend runs im2col, the product, the bias and the ReLU
a few samples at a time, in cache, and rebuilds the columns from ``x`` in the backward pass); the layer then makes
that one call instead, and the tests prove both paths equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from .. import initializers
from ..backend.geometry import check_padding, pair, window_over
from .activations import activation_forward, check_activation
from .linear import LinearWithActivation

if TYPE_CHECKING:
    from ..annotations import Initializer, IntPair, RegularizerLike, Shape


class ConvSaved(NamedTuple):
    """What :meth:`Conv2D.forward` keeps for the backward pass: the input ``x`` (N, H, W, C) and its columns
    ``cols = im2col(x)`` (N*OH*OW, KH*KW*C), None when the backend fused the convolution (it rebuilds them)."""

    x: object
    cols: object


class Conv2D(LinearWithActivation):
    """2-D convolution layer, Keras's ``Conv2D`` (channels_last, kernel ``(KH, KW, C, filters)``).

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.Conv2D(32, (5, 5), activation="relu", input_shape=(28, 28, 1))])
        >>> model.layers[0].output_shape
        (24, 24, 32)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: IntPair,
        strides: IntPair = (1, 1),
        padding: str = "valid",
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        input_shape: Shape | None = None,
        name: str | None = None,
        kernel_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
    ):
        super().__init__(name=name, input_shape=input_shape)
        self.set_regularizers(kernel_regularizer, bias_regularizer)  # penalties, see minicnn.regularizers
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError(f"filters must be a positive int, got {filters!r}")
        self.filters = filters
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = check_padding(padding)
        self.activation = check_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        self.window = window_over(
            input_shape, self.kernel_size, self.strides, self.padding, type(self).__name__, self.name
        )
        return (self.window.out_h, self.window.out_w, self.filters)

    def create_params(self, rng):
        kh, kw = self.kernel_size
        shape = (kh, kw, self.input_shape[-1], self.filters)
        self.add_weight("kernel", self.kernel_initializer(shape, rng, self.dtype))
        if self.use_bias:
            self.add_weight("bias", self.bias_initializer((self.filters,), rng, self.dtype))

    def forward(self, x, training=False):
        be, win, n = self.backend, self.window, x.shape[0]
        w = self.params["kernel"].reshape(-1, self.filters)  # W: (P, F)
        z = self.buffer("z", (n * win.out_h * win.out_w, self.filters))
        if be.fuses_conv2d:  # one call: im2col, W, bias and ReLU a few samples at a time (see the docstring)
            relu = self.activation == "relu"
            z = be.conv2d_fused_forward(x, w, self.params.get("bias"), win, relu, out=z, scratch=self.scratch)
            self.y, cols = (z if relu else activation_forward(be, self.activation, z)), None
        else:
            cols = be.im2col(x, win, out=self.scratch("cols", (len(x) * win.out_h * win.out_w, w.shape[0])))
            z = be.matmul(cols, w, out=z)  # Z = X_col @ W
            self.y = self._activate(z)  # y = activation(Z + b)
        self.saved = ConvSaved(x, cols)
        return self.y.reshape(n, win.out_h, win.out_w, self.filters)

    def backward(self, grad):
        grad = grad.reshape(-1, self.filters)
        if self.backend.fuses_conv2d and self.activation == "relu":  # dZ = dY * [y > 0] formed inside the kernel
            return self._fused_backward(grad, relu_output=self.y)
        return self.backward_linear(self.activation_gradient(grad))

    def backward_linear(self, grad_z):
        be, (x, cols), grad_z = self.backend, self.saved, grad_z.reshape(-1, self.filters)  # dZ: (M, F)
        if be.fuses_conv2d:
            return self._fused_backward(grad_z)
        w = self.params["kernel"].reshape(-1, self.filters)
        be.weight_gradient(cols, grad_z, self.grads["kernel"].reshape(w.shape))  # dW = X_col^T @ dZ
        if self.use_bias:
            be.bias_gradient(grad_z, self.grads["bias"])  # db = sum over rows of dZ
        if not self.compute_input_gradient:
            return None
        grad_cols = be.matmul(grad_z, w.T, out=self.scratch("grad_cols", cols.shape))  # dZ @ W^T
        return be.col2im(grad_cols, x.shape, self.window, out=self.buffer("grad_x", x.shape))

    def _fused_backward(self, grad, relu_output=None):
        w = self.params["kernel"].reshape(-1, self.filters)
        return self.backend.conv2d_fused_backward(
            self.saved.x,
            grad,
            w,
            self.window,
            self.grads["kernel"].reshape(w.shape),
            self.grads.get("bias"),
            relu_output=relu_output,
            input_gradient=self.compute_input_gradient,
            out=self.buffer("grad_x", self.saved.x.shape),
            scratch=self.scratch,
        )

    def multiply_adds(self) -> int:
        kh, kw = self.kernel_size
        return self.window.out_h * self.window.out_w * kh * kw * self.input_shape[-1] * self.filters

    def describe(self) -> dict:
        kh, kw = self.kernel_size
        p = kh * kw * self.input_shape[-1]
        m = f"N*{self.window.out_h * self.window.out_w}"
        return {
            "forward": f"Y = {self.activation}(im2col(X) @ W + b)",
            "backward": "dZ = dY * act'(Z); dW = im2col(X)^T @ dZ; db = sum(dZ); dX = col2im(dZ @ W^T)",
            "products": f"forward ({m}, {p}) @ ({p}, {self.filters}); backward dW ({p}, {m}) @ ({m}, "
            f"{self.filters}), dX ({m}, {self.filters}) @ ({self.filters}, {p})",
        }

    def get_config(self):
        return {
            "name": self.name,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "activation": self.activation,
            "use_bias": self.use_bias,
            **self.regularizer_config(),
        }
