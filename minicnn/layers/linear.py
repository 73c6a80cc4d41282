"""What Conv2D and Dense share: an output ``y = activation(z)`` with ``z`` linear in the input.

Backward, given ``dY = dL/dy``::

    dZ = dY * activation'(z)          (activation_gradient; from the output y, see activations.py)
    then the layer's own linear part  (backward_linear: dW, db and dX from dZ)

Weight penalties (``kernel_regularizer=``, ``bias_regularizer=``; see :mod:`minicnn.regularizers`) are a separate
step the trainer runs after the backward pass, :meth:`LinearWithActivation.add_penalty_gradients`::

    dW += dpenalty(W)/dW              for each regularized trainable weight
"""

from __future__ import annotations

from .. import regularizers
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

    # --- weight penalties (Keras's kernel_regularizer / bias_regularizer) ----------------------------------
    kernel_regularizer = None
    bias_regularizer = None

    def set_regularizers(self, kernel_regularizer=None, bias_regularizer=None) -> None:
        """Keep the penalties on the kernel and the bias (names, Regularizer objects or None)."""
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def weight_regularizers(self) -> dict:
        """``{weight name: regularizer}`` for the trainable weights that have one (Keras penalises only those: a
        frozen layer adds nothing to the loss)."""
        chosen = {"kernel": self.kernel_regularizer, "bias": self.bias_regularizer}
        return {k: chosen[k] for k in self.weight_names(trainable=True) if chosen.get(k) is not None}

    def regularization_penalty(self):
        """The sum of this layer's penalties (a 0-d backend array), or None when it has none."""
        terms = [r.penalty(self.backend.xp, self.params[k]) for k, r in self.weight_regularizers().items()]
        return sum(terms[1:], terms[0]) if terms else None

    def add_penalty_gradients(self) -> None:
        """The penalties' step, after ``backward``: ``grads[k] += dpenalty/dW_k`` for each regularized weight."""
        for k, r in self.weight_regularizers().items():
            r.add_gradient(self.backend.xp, self.params[k], self.grads[k])

    def regularizer_config(self) -> dict:
        """The regularizers' part of ``get_config`` (empty when there are none)."""
        chosen = {"kernel_regularizer": self.kernel_regularizer, "bias_regularizer": self.bias_regularizer}
        return {
            k: {"class_name": type(r).__name__, "config": r.get_config()} for k, r in chosen.items() if r is not None
        }
