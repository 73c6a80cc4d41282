"""Losses, with Keras's semantics.

Categorical cross-entropy on probabilities ``p`` (N, K) against one-hot targets ``y`` (N, K)::

    p' = clip(p / sum_k p_k, 1e-7, 1 - 1e-7)
    L  = (1/N) * sum_n ( - sum_k y_nk * log p'_nk )

Gradient with respect to ``p``, through the normalisation ``q = p / S`` with ``S = sum_k p_k`` (the clip is flat
outside its range, so its derivative there is 0)::

    dL/dq_nk = - y_nk / (N * q_nk)          inside the clip range, else 0
    dL/dp_nk = (dL/dq_nk - sum_j dL/dq_nj * q_nj) / S_n

When ``p = softmax(z)``, the chain rule through softmax collapses to the fused gradient
``dL/dz = (p - y) / N``, cheaper and exact. That is a property of the loss (``fuses_softmax``): when the model's
last activation is softmax, the training step asks the loss for dL/dz and starts the backward pass below the
softmax.
"""

from __future__ import annotations

from .backend import numpy_ref

EPSILON = 1e-7


class CategoricalCrossentropy:
    """Keras's ``categorical_crossentropy`` on probabilities (``from_logits=False``)."""

    name = "categorical_crossentropy"
    fuses_softmax = True       # dL/dz through a softmax output is (p - y) / N
    one_hot_targets = True     # targets are one-hot (or probability) rows

    def __init__(self, epsilon: float = EPSILON):
        self.epsilon = epsilon

    def forward(self, xp, p, y):
        """The mean loss over the batch, as a 0-d array of the backend (no host synchronisation)."""
        return self.per_sample(xp, p, y).mean()

    def per_sample(self, xp, p, y):
        """The loss of each sample, shape (N,)."""
        return numpy_ref.crossentropy_per_sample(xp, p, y, self.epsilon)

    def backward(self, xp, p, y):
        """dL/dp, shape (N, K), through the normalisation and the clip."""
        total = p.sum(axis=-1, keepdims=True)
        q = p / total
        inside = (q > self.epsilon) & (q < 1 - self.epsilon)
        grad_q = -(y / xp.maximum(q, self.epsilon)) * inside / p.shape[0]
        return (grad_q - (grad_q * q).sum(axis=-1, keepdims=True)) / total

    @staticmethod
    def backward_from_softmax(p, y):
        """dL/dz for p = softmax(z): (p - y) / N."""
        grad = p - y
        grad /= p.shape[0]
        return grad

    def step(self, backend, p, y, through_softmax: bool, grad_out=None):
        """What a training step needs: ``(loss, accuracy, gradient)`` as backend arrays. With ``through_softmax``
        (the outputs ``p`` are a softmax's) the gradient is dL/dz below the softmax, all three from one fused
        backend call; else dL/dp."""
        if through_softmax:
            return backend.softmax_crossentropy_step(p, y, self.epsilon, grad_out)
        xp = backend.xp
        return self.forward(xp, p, y), categorical_accuracy(xp, p, y), self.backward(xp, p, y)


LOSSES = {"categorical_crossentropy": CategoricalCrossentropy}


def get(loss):
    """A loss object from its name or the object itself."""
    if isinstance(loss, str):
        try:
            return LOSSES[loss]()
        except KeyError:
            raise ValueError(f"unknown loss {loss!r}; known losses: {', '.join(LOSSES)}") from None
    if not hasattr(loss, "forward"):
        raise TypeError(f"loss must be a name ({', '.join(LOSSES)}) or a loss object, got {loss!r}")
    return loss


def categorical_accuracy(xp, p, y):
    """Fraction of rows whose largest probability is at the target's class (0-d backend array)."""
    return numpy_ref.accuracy(xp, p, y)
