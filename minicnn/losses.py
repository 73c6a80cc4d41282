"""Losses, with Keras's semantics.

Categorical cross-entropy on probabilities ``p`` (N, K) against one-hot targets ``y`` (N, K)::

    p' = clip(p / sum_k p_k, 1e-7, 1 - 1e-7)
    L  = (1/N) * sum_n ( - sum_k y_nk * log p'_nk )

Gradient with respect to ``p``, through the normalisation ``q = p / S`` with ``S = sum_k p_k`` (the clip is flat
outside its range, so its derivative there is 0)::

    dL/dq_nk = - y_nk / (N * q_nk)          inside the clip range, else 0
    dL/dp_nk = (dL/dq_nk - sum_j dL/dq_nj * q_nj) / S_n

When ``p = softmax(z)``, the chain rule through softmax collapses to the fused gradient
``dL/dz = (p - y) / N``, cheaper and exact (it is what the model uses when the last activation is softmax).
"""

from __future__ import annotations

from .backend import array_module, numpy_ref

EPSILON = 1e-7


class CategoricalCrossentropy:
    """Keras's ``categorical_crossentropy`` on probabilities (``from_logits=False``)."""

    name = "categorical_crossentropy"

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
        return numpy_ref.softmax_crossentropy_grad(array_module(p), p, y)


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
