"""Fully connected layer.

Forward, for ``x`` of shape ``(N, D)``, kernel ``W`` of shape ``(D, U)`` and bias ``b`` of shape ``(U,)``::

    z = x @ W + b          (N, U)
    y = activation(z)

Backward, given ``dY`` of shape ``(N, U)``::

    dZ = dY * activation'(z)
    dW = x^T @ dZ          (D, U)
    db = sum over rows dZ  (U,)
    dX = dZ @ W^T          (N, D)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import initializers
from .activations import check_activation
from .linear import LinearWithActivation

if TYPE_CHECKING:
    from ..annotations import Initializer, RegularizerLike, Shape


class Dense(LinearWithActivation):
    """Keras's ``Dense``: ``activation(x @ kernel + bias)``, kernel of shape ``(input_dim, units)``.

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.Dense(10, activation="softmax", input_shape=(84,))])
        >>> model.count_params()
        850
    """

    def __init__(
        self,
        units: int,
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
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"units must be a positive int, got {units!r}")
        self.units = units
        self.activation = check_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"Dense {self.name!r} expects flat inputs (features,), got {tuple(input_shape)}; "
                "put a Flatten() layer before it"
            )
        return (self.units,)

    def create_params(self, rng):
        self.add_weight("kernel", self.kernel_initializer((self.input_shape[0], self.units), rng, self.dtype))
        if self.use_bias:
            self.add_weight("bias", self.bias_initializer((self.units,), rng, self.dtype))

    def forward(self, x, training=False):
        self.x = x
        z = self.backend.matmul(x, self.params["kernel"], out=self.buffer("z", (x.shape[0], self.units)))
        self.y = self._activate(z)
        return self.y

    def backward_linear(self, grad_z):
        self.backend.weight_gradient(self.x, grad_z, self.grads["kernel"], scratch=self.scratch)
        if self.use_bias:
            self.backend.bias_gradient(grad_z, self.grads["bias"])
        if not self.compute_input_gradient:
            return None
        return self.backend.matmul(grad_z, self.params["kernel"].T, out=self.buffer("grad_x", self.x.shape))

    def multiply_adds(self) -> int:
        return self.input_shape[0] * self.units

    def describe(self) -> dict:
        d, u = self.input_shape[0], self.units
        return {
            "forward": f"Y = {self.activation}(X @ W + b)",
            "backward": "dZ = dY * act'(Z); dW = X^T @ dZ; db = sum(dZ); dX = dZ @ W^T",
            "products": f"forward (N, {d}) @ ({d}, {u}); backward dW ({d}, N) @ (N, {u}), dX (N, {u}) @ ({u}, {d})",
        }

    def get_config(self):
        return {
            "name": self.name,
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            **self.regularizer_config(),
        }
