"""Exercise: the gradient of the mean cross-entropy through a softmax, checked against minicnn.losses."""

from __future__ import annotations

import numpy as np

from ..gradcheck import numerical_gradient
from ..losses import CategoricalCrossentropy

NAME = "softmax_crossentropy_backward"
TITLE = "the gradient of softmax + cross-entropy with respect to the logits"
FUNCTION = "softmax_crossentropy_backward"
OUTPUTS = ("dZ",)
SHAPE_OF = {"dZ": " (the shape of the logits z)"}

TEMPLATE = '''"""Exercise softmax_crossentropy_backward: the gradient of softmax + cross-entropy w.r.t. the logits.

Forward (the tutorial's last layer and its loss), for a batch of N rows of K logits z (N, K) and
one-hot targets y (N, K):

    p[n, k] = exp(z[n, k]) / sum over j of exp(z[n, j])        softmax, each row sums to 1
    L       = (1/N) * sum over n of ( - sum over k of y[n, k] * log p[n, k] )   mean cross-entropy

Backward: compute dZ = dL/dz, of shape (N, K). Work it out for one row first: with
dp_j/dz_k = p_j * (delta_jk - p_k), the chain rule collapses to a very short formula. Do not
forget the 1/N of the mean.

Check your answer with:  python -m minicnn.exercises check softmax_crossentropy_backward
"""

import numpy as np


def softmax_crossentropy_backward(z, y):
    """Return dL/dz (N, K) for the mean cross-entropy of softmax(z) against one-hot y (N, K)."""
    raise NotImplementedError
'''


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference(z, y):
    return (_softmax(z) - y) / len(z)


def cases():
    rng = np.random.default_rng(18)
    out = []
    for n, k in [(4, 3), (5, 10), (1, 4)]:
        y = np.eye(k)[rng.integers(0, k, n)]
        out.append((f"z {(n, k)} logits, y {(n, k)} one-hot", {"z": rng.standard_normal((n, k)), "y": y}))
    return out


def expected(args):
    loss = CategoricalCrossentropy(from_logits=True)
    return {"dZ": loss.backward(np, args["z"], args["y"])}


def numerical(args):
    z, y = args["z"], args["y"]
    loss = CategoricalCrossentropy(from_logits=True)
    return {"dZ": numerical_gradient(lambda: float(loss.forward(np, z, y)), z)}


MISTAKES = [
    ("the 1/N of the mean is missing: dZ = (p - y) / N, not p - y.", lambda z, y: _softmax(z) - y),
    ("the sign is flipped: dZ = (p - y) / N, not (y - p) / N.", lambda z, y: (y - _softmax(z)) / len(z)),
    (
        "this is p / N without the targets: the cross-entropy's part, -y / p times the softmax's Jacobian, gives the "
        "- y.",
        lambda z, y: _softmax(z) / len(z),
    ),
    (
        "this is -y / (N p), the gradient with respect to p; chain it through the softmax's Jacobian to get dL/dz.",
        lambda z, y: -y / (len(z) * _softmax(z)),
    ),
]
