"""Exercise: the backward pass of a Dense layer (z = x @ W + b), checked against minicnn.layers.Dense."""

from __future__ import annotations

import numpy as np

from ..backend import get_backend
from ..gradcheck import numerical_gradient
from ..layers import Dense

NAME = "dense_backward"
TITLE = "the backward pass of a fully connected layer"
FUNCTION = "dense_backward"
OUTPUTS = ("dW", "db", "dX")
SHAPE_OF = {"dW": " (the shape of W)", "db": " (one entry per unit, like b)", "dX": " (the shape of x)"}

TEMPLATE = '''"""Exercise dense_backward: the backward pass of a fully connected (Dense) layer.

Forward (what minicnn.layers.Dense computes, before its activation), for a batch of N rows:

    z = x @ W + b        x: (N, D)   W: (D, U)   b: (U,)   z: (N, U)

Backward: given dZ = dL/dz, of shape (N, U), compute

    dW = dL/dW   shape (D, U)    each entry: dW[d, u] = sum over n of x[n, d] * dZ[n, u]
    db = dL/db   shape (U,)      each entry: db[u]    = sum over n of dZ[n, u]
    dX = dL/dx   shape (N, D)    each entry: dX[n, d] = sum over u of dZ[n, u] * W[d, u]

Each sum is a matrix product or a sum over an axis: no Python loops needed.
Check your answer with:  python -m minicnn.exercises check dense_backward
"""

import numpy as np


def dense_backward(x, W, dZ):
    """Return (dW, db, dX) for z = x @ W + b, given x (N, D), W (D, U) and dZ (N, U)."""
    raise NotImplementedError
'''


def reference(x, W, dZ):
    return x.T @ dZ, dZ.sum(axis=0), dZ @ W.T


def cases():
    rng = np.random.default_rng(18)
    shapes = [(4, 3, 5), (6, 7, 2), (1, 4, 3)]  # N, D, U all different, so a transposed product shows
    return [
        (
            f"x {(n, d)}, W {(d, u)}, dZ {(n, u)}",
            {"x": rng.standard_normal((n, d)), "W": rng.standard_normal((d, u)), "dZ": rng.standard_normal((n, u))},
        )
        for n, d, u in shapes
    ]


def expected(args):
    x, W, dZ = args["x"], args["W"], args["dZ"]
    layer = Dense(W.shape[1])
    layer.build((W.shape[0],), get_backend("numpy"), np.float64, np.random.default_rng(0))
    layer.params["kernel"][...] = W
    layer.forward(x)
    dX = layer.backward_linear(dZ)
    return {"dW": layer.grads["kernel"].copy(), "db": layer.grads["bias"].copy(), "dX": dX.copy()}


def numerical(args):
    """L = sum((x @ W + b) * dZ), so that dL/dz = dZ; central differences in W, b and x."""
    x, W, dZ = args["x"], args["W"], args["dZ"]
    b = np.zeros(W.shape[1])

    def loss():
        return float(np.sum((x @ W + b) * dZ))

    return {"dW": numerical_gradient(loss, W), "db": numerical_gradient(loss, b), "dX": numerical_gradient(loss, x)}


MISTAKES = [
    (
        "dW = dZ^T @ x gives the transpose of dW; the product must be x^T @ dZ, of shape (D, U) like W.",
        lambda x, W, dZ: (dZ.T @ x, dZ.sum(axis=0), dZ @ W.T),
    ),
    (
        "db is the MEAN of dZ over the batch; it is the SUM (the 1/N of the loss is already inside dZ).",
        lambda x, W, dZ: (x.T @ dZ, dZ.mean(axis=0), dZ @ W.T),
    ),
    (
        "dW was divided by N; dZ already carries the loss's 1/N, so dW = x^T @ dZ with no further division.",
        lambda x, W, dZ: (x.T @ dZ / len(x), dZ.sum(axis=0), dZ @ W.T),
    ),
    (
        "db sums over the wrong axis (over units instead of over the batch): db[u] = sum over n of dZ[n, u].",
        lambda x, W, dZ: (x.T @ dZ, dZ.sum(axis=1), dZ @ W.T),
    ),
]
