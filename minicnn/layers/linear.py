"""What Conv2D and Dense share: an output ``y = activation(z)`` with ``z`` linear in the input.

Backward, given ``dY = dL/dy``::

    dZ = dY * activation'(z)          (activation_gradient; from the output y, see activations.py)
    then the layer's own linear part  (backward_linear: dW, db and dX from dZ)
"""

from __future__ import annotations

from .activations import activation_backward, activation_forward
from .base import Layer


class LinearWithActivation(Layer):
    """A layer computing ``y = activation(z)`` with ``z`` linear in its input (Conv2D, Dense).

    ``backward(dY)`` is ``backward_linear(dY * activation'(z))``; the model calls ``backward_linear`` directly
    with ``dZ`` when the loss gives the gradient past the softmax (``(p - y) / N`` for cross-entropy).

    ``compute_input_gradient = False`` (the model sets it on its first layer during training, where nobody
    reads dL/dx) skips ``dX`` and returns None: for the tutorial's first convolution that saves a matrix
    product and a col2im over the whole input batch.
    """

    compute_input_gradient = True

    def _activate(self, z):
        """``activation(z + bias)``, in place in ``z`` where it can (ReLU: one fused bias + ReLU kernel)."""
        if self.activation == "relu" and self.use_bias:
            return self.backend.bias_relu(z, self.params["bias"])
        if self.use_bias:
            z += self.params["bias"]
        return activation_forward(self.backend, self.activation, z)

    def activation_gradient(self, grad):
        """``dZ = dY * activation'(z)``, from the kept output ``self.y`` (same shape as ``grad``)."""
        return activation_backward(self.backend, self.activation, grad, self.y, out=self.buffer("grad_z", grad.shape))

    def backward(self, grad):
        return self.backward_linear(self.activation_gradient(grad))

    def backward_linear(self, grad_z):
        """dW, db into ``self.grads`` and the returned dX, given ``dZ = dL/dz``."""
        raise NotImplementedError
