"""Activation functions, their derivatives, and the ``Activation`` layer.

Each activation is written in terms of its OUTPUT ``y``, so a layer keeps only ``y`` for its backward pass:

==========  ==================================  ==============================================
name        forward ``y = f(z)``                backward ``dz = dy * f'(z)``
==========  ==================================  ==============================================
linear      ``z``                               ``dy``
relu        ``max(z, 0)``                       ``dy * [y > 0]``
sigmoid     ``1 / (1 + exp(-z))``               ``dy * y * (1 - y)``
tanh        ``tanh(z)``                         ``dy * (1 - y^2)``
softmax     ``exp(z_k - max z) / sum_j exp(..)``  ``y * (dy - sum_k dy_k y_k)`` (over the last axis)
==========  ==================================  ==============================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Layer

if TYPE_CHECKING:
    from ..annotations import Shape

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")


def check_activation(name):
    """Return the canonical activation name (None means linear) or raise a ValueError listing the known ones."""
    name = "linear" if name is None else name
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known activations: {', '.join(ACTIVATIONS)}")
    return name


def activation_forward(backend, name: str, z):
    """y = f(z) for the activation ``name`` (may overwrite ``z``)."""
    xp = backend.xp
    if name == "linear":
        return z
    if name == "relu":
        return xp.maximum(z, 0, out=z)
    if name == "sigmoid":
        return 1 / (1 + xp.exp(-z))
    if name == "tanh":
        return xp.tanh(z)
    # softmax over the last axis, shifted by the max for stability
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def activation_backward(backend, name: str, dy, y, out=None):
    """dz = dy * f'(z), computed from the output y (written into ``out`` for ReLU when given)."""
    if name == "linear":
        return dy
    if name == "relu":
        return backend.relu_backward(dy, y, out)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y * y)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


class Activation(Layer):
    """Applies an activation elementwise (softmax: over the last axis). No parameters.

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.Dense(3, input_shape=(4,)), mc.layers.Activation("softmax")])
    """

    def __init__(self, activation: str, name: str | None = None, input_shape: Shape | None = None):
        super().__init__(name=name, input_shape=input_shape)
        self.activation = check_activation(activation)

    def forward(self, x, training=False):
        self.y = activation_forward(self.backend, self.activation, x.copy())
        return self.y

    def backward(self, grad):
        return activation_backward(self.backend, self.activation, grad, self.y)

    def describe(self) -> dict:
        return {"forward": f"Y = {self.activation}(X)", "backward": f"dX = dY * {self.activation}'(X)", "products": ""}

    def get_config(self):
        return {"name": self.name, "activation": self.activation}

    def backward_linear(self, grad_z):
        """The gradient with respect to this layer's input when ``grad_z`` is already taken past the
        activation (the fused softmax + cross-entropy gradient): the input IS ``z``."""
        return grad_z
