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

``from_logits=True`` (both cross-entropies): the outputs are logits ``z`` (the model's last layer is linear) and the
softmax happens inside the loss, through a numerically stable log-softmax::

    log softmax(z)_k = (z_k - max_j z_j) - log sum_j exp(z_j - max_j z_j)
    L     = (1/N) * sum_n ( - sum_k y_nk * log softmax(z_n)_k )        (no clipping)
    dL/dz = (softmax(z) - y) / N                                      (rows of y sum to 1: the target checks)

``sparse_categorical_crossentropy`` takes class indices ``y`` of shape (N,) (or (N, 1)) instead of one-hot rows: it
is the categorical cross-entropy of the one-hot rows ``onehot(y)``, so the same formulas hold (the fused gradient
below a softmax output is ``(p - onehot(y)) / N``), and its accuracy compares ``argmax p`` with ``y`` itself.
"""

from __future__ import annotations

from .backend import backend_of, numpy_ref

EPSILON = 1e-7


class CategoricalCrossentropy:
    """Keras's ``categorical_crossentropy`` on probabilities (``from_logits=False``)."""

    name = "categorical_crossentropy"
    fuses_softmax = True  # dL/dz through a softmax output is (p - y) / N
    one_hot_targets = True  # targets are one-hot (or probability) rows

    def __init__(self, from_logits: bool = False, epsilon: float = EPSILON):
        if not isinstance(from_logits, bool):
            raise TypeError(f"from_logits must be True or False, got {from_logits!r}")
        self.from_logits = from_logits
        self.epsilon = epsilon
        if from_logits:
            self.fuses_softmax = False  # the outputs are logits: dL/dz is the plain gradient (backward)

    def forward(self, xp, p, y):
        """The mean loss over the batch, as a 0-d array of the backend (no host synchronisation)."""
        return self.per_sample(xp, p, y).mean()

    def per_sample(self, xp, p, y):
        """The loss of each sample, shape (N,)."""
        if self.from_logits:
            return -(y * log_softmax(xp, p)).sum(axis=-1)
        return numpy_ref.crossentropy_per_sample(xp, p, y, self.epsilon)

    def backward(self, xp, p, y):
        """dL/dp, shape (N, K), through the normalisation and the clip (from logits: dL/dz = (softmax(z) - y) / N)."""
        if self.from_logits:
            return self.backward_from_softmax(softmax(xp, p), y)
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

    def accuracy(self, xp, p, y):
        """The metric "accuracy" for this loss: :func:`categorical_accuracy`."""
        return categorical_accuracy(xp, p, y)


class SparseCategoricalCrossentropy:
    """Keras's ``sparse_categorical_crossentropy``: targets are class indices ``y`` (N,) of integers in [0, K), the
    loss that of ``onehot(y)`` (see the module's docstring), computed by a :class:`CategoricalCrossentropy` with the
    same ``from_logits``."""

    name = "sparse_categorical_crossentropy"
    one_hot_targets = False
    sparse_targets = True  # the trainer checks y as class indices (minicnn.checks.labels_checked)

    def __init__(self, from_logits: bool = False, epsilon: float = EPSILON):
        self.categorical = CategoricalCrossentropy(from_logits=from_logits, epsilon=epsilon)
        self.from_logits, self.epsilon = from_logits, epsilon
        self.fuses_softmax = self.categorical.fuses_softmax

    @staticmethod
    def one_hot(xp, labels, p):
        """The one-hot rows of ``labels`` (N,), shaped and typed like ``p`` (N, K)."""
        rows = xp.zeros_like(p)
        rows[xp.arange(p.shape[0]), labels.reshape(-1)] = 1
        return rows

    def forward(self, xp, p, y):
        """The mean loss over the batch (0-d backend array)."""
        return self.per_sample(xp, p, y).mean()

    def per_sample(self, xp, p, y):
        return self.categorical.per_sample(xp, p, self.one_hot(xp, y, p))

    def backward(self, xp, p, y):
        return self.categorical.backward(xp, p, self.one_hot(xp, y, p))

    def step(self, backend, p, y, through_softmax: bool, grad_out=None):
        """:meth:`CategoricalCrossentropy.step` on ``onehot(y)``: below a softmax output, dL/dz = (p - onehot(y))/N."""
        return self.categorical.step(backend, p, self.one_hot(backend.xp, y, p), through_softmax, grad_out)

    def backward_from_softmax(self, p, y):
        """dL/dz for p = softmax(z): (p - onehot(y)) / N."""
        return self.categorical.backward_from_softmax(p, self.one_hot(backend_of(p).xp, y, p))

    def accuracy(self, xp, p, y):
        """The metric "accuracy" for this loss: :func:`sparse_categorical_accuracy`."""
        return sparse_categorical_accuracy(xp, p, y)


LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


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


def sparse_categorical_accuracy(xp, p, y):
    """Fraction of rows whose largest output is at the class index ``y[n]`` (0-d backend array)."""
    return (p.argmax(axis=-1) == y.reshape(-1)).mean(dtype=p.dtype)


def log_softmax(xp, z):
    """``log softmax(z)`` along the last axis, computed stably: ``(z - max z) - log sum exp(z - max z)``."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(xp, z):
    """``exp(z - max z) / sum exp(z - max z)`` along the last axis."""
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def weighted_loss(loss, xp, p, y, sample_weight):
    """Keras's sample-weighted loss (reduction "sum_over_batch_size"): ``L = (1/N) * sum_n w_n * l_n`` over a batch
    of N, where ``l_n`` is sample n's loss (``loss.per_sample``) and ``w_n`` its weight (N,). A 0-d backend array."""
    if not hasattr(loss, "per_sample"):
        raise TypeError(
            f"sample weights need a loss with per_sample(xp, p, y) (each sample's loss); {type(loss).__name__} has none"
        )
    return (loss.per_sample(xp, p, y) * sample_weight).mean()


def weighted_step(loss, backend, p, y, sample_weight, through_softmax: bool, grad_out=None):
    """``loss.step`` for the weighted loss ``L = (1/N) sum_n w_n l_n``: ``(L, accuracy, gradient)``.

    Row n of the gradient (dL/dp, or dL/dz below a softmax) depends on sample n alone, so the weighted gradient is
    the unweighted one with row n scaled by ``w_n``: below a softmax, ``w_n * (p_n - y_n) / N``. The accuracy stays
    unweighted (Keras weighs only ``weighted_metrics``, not ``metrics``)."""
    _, acc, grad = loss.step(backend, p, y, through_softmax, grad_out)
    grad *= sample_weight.reshape((-1,) + (1,) * (grad.ndim - 1))
    return weighted_loss(loss, backend.xp, p, y, sample_weight), acc, grad
