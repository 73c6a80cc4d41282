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
"""

from __future__ import annotations

from .. import initializers
from ..backend import make_window
from .activations import activation_backward, activation_forward, check_activation
from .base import Layer


def _pair(value, what):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise TypeError(f"{what} must be an int or a pair of ints, got {value!r}")
    if min(pair) <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return pair


def _check_padding(padding):
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding


class LinearWithActivation(Layer):
    """A layer computing ``y = activation(z)`` with ``z`` linear in its input (Conv2D, Dense).

    ``backward(dY)`` is ``backward_linear(dY * activation'(z))``; the loss may call ``backward_linear``
    directly with ``dZ`` when it fuses the gradient of softmax and cross-entropy into ``(p - y) / N``.

    ``compute_input_gradient = False`` (the model sets it on its first layer during training, where nobody
    reads dL/dx) skips ``dX`` and returns None: for the tutorial's first convolution that saves a matrix
    product and a col2im over the whole input batch.
    """

    compute_input_gradient = True

    def _activate(self, z):
        if self.activation == "relu" and self.use_bias:
            return self.backend.bias_relu(z, self.params["bias"])
        if self.use_bias:
            z += self.params["bias"]
        return activation_forward(self.backend, self.activation, z)

    def backward(self, grad):
        grad_z = activation_backward(self.backend, self.activation, grad, self.y,
                                     out=self._buffer("grad_z", self.y.shape))
        return self.backward_linear(grad_z)

    def backward_linear(self, grad_z):
        raise NotImplementedError


class Conv2D(LinearWithActivation):
    """2-D convolution layer, Keras's ``Conv2D`` (channels_last, kernel ``(KH, KW, C, filters)``).

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.Conv2D(32, (5, 5), activation="relu", input_shape=(28, 28, 1))])
        >>> model.layers[0].output_shape
        (24, 24, 32)
    """

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 input_shape=None, name=None):
        super().__init__(name=name, input_shape=input_shape)
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError(f"filters must be a positive int, got {filters!r}")
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _check_padding(padding)
        self.activation = check_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects inputs of shape (height, width, "
                             f"channels), got {tuple(input_shape)}")
        h, w, _ = input_shape
        self.window = make_window(h, w, self.kernel_size, self.strides, self.padding)
        if self.window.out_h <= 0 or self.window.out_w <= 0:
            raise ValueError(f"layer {self.name!r}: kernel {self.kernel_size} with padding {self.padding!r} "
                             f"does not fit its input {h}x{w}")
        return (self.window.out_h, self.window.out_w, self.filters)

    def create_params(self, rng):
        kh, kw = self.kernel_size
        shape = (kh, kw, self.input_shape[-1], self.filters)
        self.add_param("kernel", self.kernel_initializer(shape, rng, self.dtype))
        if self.use_bias:
            self.add_param("bias", self.bias_initializer((self.filters,), rng, self.dtype))

    def forward(self, x, training=False):
        win = self.window
        n = x.shape[0]
        kernel2d = self.params["kernel"].reshape(-1, self.filters)
        self.x_shape = x.shape
        # z = im2col(x) @ W + b, with the ReLU fused in when it is the activation (see Backend.conv2d_forward)
        relu = self.activation == "relu"
        z, self.saved = self.backend.conv2d_forward(
            x, kernel2d, self.params.get("bias"), win, relu,
            out=self._buffer("z", (n * win.out_h * win.out_w, self.filters)), scratch=self._scratch)
        self.y = z if relu else activation_forward(self.backend, self.activation, z)
        return self.y.reshape(n, win.out_h, win.out_w, self.filters)

    def backward_linear(self, grad_z):
        return self._gradients(grad_z.reshape(-1, self.filters))

    def backward(self, grad):
        grad = grad.reshape(-1, self.filters)
        if self.activation == "relu":  # dZ = dY * [y > 0], formed inside the backend's kernel
            return self._gradients(grad, relu_output=self.y)
        return super().backward(grad)

    def _gradients(self, grad, relu_output=None):
        kernel2d = self.params["kernel"].reshape(-1, self.filters)
        return self.backend.conv2d_backward(
            self.saved, grad, kernel2d, self.x_shape, self.window, self.grads["kernel"].reshape(kernel2d.shape),
            self.grads.get("bias"), self.compute_input_gradient, out=self._buffer("grad_x", self.x_shape),
            scratch=self._scratch, relu_output=relu_output)

    def multiply_adds(self) -> int:
        kh, kw = self.kernel_size
        return self.window.out_h * self.window.out_w * kh * kw * self.input_shape[-1] * self.filters

    def describe(self) -> dict:
        kh, kw = self.kernel_size
        p = kh * kw * self.input_shape[-1]
        m = f"N*{self.window.out_h * self.window.out_w}"
        return {"forward": f"Y = {self.activation}(im2col(X) @ W + b)",
                "backward": "dZ = dY * act'(Z); dW = im2col(X)^T @ dZ; db = sum(dZ); dX = col2im(dZ @ W^T)",
                "products": f"forward ({m}, {p}) @ ({p}, {self.filters}); backward dW ({p}, {m}) @ ({m}, "
                            f"{self.filters}), dX ({m}, {self.filters}) @ ({self.filters}, {p})"}

    def get_config(self):
        return {"name": self.name, "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "activation": self.activation,
                "use_bias": self.use_bias}
