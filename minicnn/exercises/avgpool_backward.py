"""Exercise: average pooling's backward pass, checked against minicnn.layers.AveragePooling2D."""

from __future__ import annotations

import numpy as np

from ..backend import get_backend
from ..gradcheck import numerical_gradient
from ..layers import AveragePooling2D

NAME = "avgpool_backward"
TITLE = "average pooling's backward pass: sharing each gradient over its window"
FUNCTION = "avgpool_backward"
OUTPUTS = ("dX",)
SHAPE_OF = {"dX": " (x_shape)"}

TEMPLATE = '''"""Exercise avgpool_backward: the backward pass of average pooling.

Forward (minicnn.layers.AveragePooling2D with pool_size=(P, P), strides P, padding "valid"), NHWC:

    x: (N, H, W, C)      y: (N, H // P, W // P, C)
    y[n, i, j, c] = (1 / (P * P)) * sum of the window x[n, i*P:(i+1)*P, j*P:(j+1)*P, c]

Rows and columns beyond the last whole window (when H or W is not a multiple of P) are in no window.

Backward: given dY = dL/dy, of the shape of y, compute dX = dL/dx, of shape x_shape. y is linear in
x and every pixel of a window weighs 1 / (P * P) in its mean, so

    dX[n, h, w, c] = dY[n, h // P, w // P, c] / (P * P)    inside a window,  0 outside every window.

Check your answer with:  python -m minicnn.exercises check avgpool_backward
"""

import numpy as np


def avgpool_backward(dY, x_shape, P):
    """Return dX of shape x_shape = (N, H, W, C): each dY entry shared evenly over its P x P window."""
    raise NotImplementedError
'''


def _share(dY, x_shape, P, weight):
    """dX with window (i, j) given ``weight(P) * dY[:, i, j, :]`` at each of its cells."""
    dX = np.zeros(x_shape)
    for i, j in np.ndindex(*dY.shape[1:3]):
        dX[:, i * P : (i + 1) * P, j * P : (j + 1) * P, :] = dY[:, i : i + 1, j : j + 1, :] * weight(P)
    return dX


def reference(dY, x_shape, P):
    return _share(dY, x_shape, P, lambda p: 1 / (p * p))


def cases():
    rng = np.random.default_rng(18)
    specs = [
        ((2, 4, 6, 3), 2, ""),
        ((1, 5, 7, 2), 2, ": the last row and column are in no window"),
        ((2, 6, 6, 1), 3, ""),
    ]
    return [
        (
            f"x_shape {s}, P {p}{note}",
            {"dY": rng.standard_normal((s[0], s[1] // p, s[2] // p, s[3])), "x_shape": s, "P": p},
        )
        for s, p, note in specs
    ]


def _layer(x_shape, P):
    layer = AveragePooling2D((P, P))
    layer.build(x_shape[1:], get_backend("numpy"), np.float64, np.random.default_rng(0))
    return layer


def expected(args):
    layer = _layer(args["x_shape"], args["P"])
    layer.forward(np.zeros(args["x_shape"]))
    return {"dX": layer.backward(args["dY"]).copy()}


def numerical(args):
    layer = _layer(args["x_shape"], args["P"])
    x = np.random.default_rng(0).standard_normal(args["x_shape"])
    return {"dX": numerical_gradient(lambda: float(np.sum(layer.forward(x) * args["dY"])), x)}


MISTAKES = [
    (
        "each cell got the whole dY of its window: divide by the window's P * P cells (each weighs 1 / (P * P)).",
        lambda dY, x_shape, P: _share(dY, x_shape, P, lambda p: 1.0),
    ),
    (
        "each cell got dY / P: a window has P * P cells, so each gets dY / (P * P).",
        lambda dY, x_shape, P: _share(dY, x_shape, P, lambda p: 1 / p),
    ),
]


def explain(args, got):
    """Name the cells outside every window when the learner gave them a gradient."""
    _, h, w, _ = args["x_shape"]
    P = args["P"]
    dX = np.asarray(got[0], np.float64)
    if dX.shape != tuple(args["x_shape"]):
        return []
    outside = np.abs(dX[:, (h // P) * P :]).sum() + np.abs(dX[:, :, (w // P) * P :]).sum()
    return (
        [f"rows from {(h // P) * P} and columns from {(w // P) * P} are in no window: their dX must be 0."]
        if outside
        else []
    )
