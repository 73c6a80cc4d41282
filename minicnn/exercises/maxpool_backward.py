"""Exercise: max pooling's backward pass (routing each gradient to its window's maximum), checked against
minicnn.layers.MaxPooling2D."""

from __future__ import annotations

import numpy as np

from ..backend import get_backend
from ..gradcheck import numerical_gradient
from ..layers import MaxPooling2D

NAME = "maxpool_backward"
TITLE = "max pooling's backward pass: routing the gradient to each window's maximum"
FUNCTION = "maxpool_backward"
OUTPUTS = ("dX",)
SHAPE_OF = {"dX": " (the shape of x)"}

TEMPLATE = '''"""Exercise maxpool_backward: the backward pass of max pooling.

Forward (minicnn.layers.MaxPooling2D with pool_size=(P, P), strides P, padding "valid"), NHWC:

    x: (N, H, W, C)      y: (N, H // P, W // P, C)
    y[n, i, j, c] = max of the window x[n, i*P:(i+1)*P, j*P:(j+1)*P, c]

Rows and columns beyond the last whole window (when H or W is not a multiple of P) are in no window.

Backward: given dY = dL/dy, of the shape of y, compute dX = dL/dx, of the shape of x:

    dX[n, h, w, c] = dY[n, i, j, c]   if x[n, h, w, c] is the maximum of window (i, j)
                   = 0                otherwise

Only the winner of each window moved the output, so only it receives the gradient. When a window
holds its maximum more than once (ties: after a ReLU whole windows are 0), the gradient goes to the
FIRST maximum in row-major order (TensorFlow's rule, and np.argmax's).

Check your answer with:  python -m minicnn.exercises check maxpool_backward
"""

import numpy as np


def maxpool_backward(x, dY, P):
    """Return dX (the shape of x): dY routed to the first maximum of each P x P window of x."""
    raise NotImplementedError
'''


def _route(x, dY, P, pick):
    """dX with each window's gradient sent to the in-window position ``pick(flat window) -> (a, b)``."""
    dX = np.zeros_like(x)
    n_, oh, ow, c_ = dY.shape
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                for c in range(c_):
                    a, b = pick(x[n, i * P : (i + 1) * P, j * P : (j + 1) * P, c])
                    dX[n, i * P + a, j * P + b, c] += dY[n, i, j, c]
    return dX


def reference(x, dY, P):
    return _route(x, dY, P, lambda win: np.unravel_index(np.argmax(win), win.shape))


def cases():
    rng = np.random.default_rng(18)
    relu = np.maximum(rng.standard_normal((2, 4, 4, 2)), 0)
    relu[0, :2, :2, 0] = 0  # one window all zeros for sure
    specs = [
        ("x (2, 4, 6, 3), P 2, no ties", rng.standard_normal((2, 4, 6, 3)), 2),
        ("x (1, 5, 7, 2), P 2: the last row and column are in no window", rng.standard_normal((1, 5, 7, 2)), 2),
        ("x (2, 6, 6, 1), P 3", rng.standard_normal((2, 6, 6, 1)), 3),
        ("x (2, 4, 4, 2) after a ReLU, P 2: windows of zeros are ties", relu, 2),
    ]
    return [
        (text, {"x": x, "dY": rng.standard_normal((x.shape[0], x.shape[1] // p, x.shape[2] // p, x.shape[3])), "P": p})
        for text, x, p in specs
    ]


def expected(args):
    x, dY, P = args["x"], args["dY"], args["P"]
    layer = MaxPooling2D((P, P))
    layer.build(x.shape[1:], get_backend("numpy"), np.float64, np.random.default_rng(0))
    layer.forward(x)
    return {"dX": layer.backward(dY).copy()}


def numerical(args):
    """dL/dx for L = sum(maxpool(x) * dY), where the max has no ties (with ties it has a kink: no derivative)."""
    x, dY, P = args["x"], args["dY"], args["P"]
    if np.any(x == 0):
        return {}
    layer = MaxPooling2D((P, P))
    layer.build(x.shape[1:], get_backend("numpy"), np.float64, np.random.default_rng(0))
    return {"dX": numerical_gradient(lambda: float(np.sum(layer.forward(x) * dY)), x)}


def _last(win):
    flat = win.ravel()
    k = len(flat) - 1 - int(np.argmax(flat[::-1]))
    return np.unravel_index(k, win.shape)


def _per_window(x, dY, P, share):
    """dX with window (i, j) of every image and channel given ``share(window, dY[:, i, j, :])``."""
    dX = np.zeros_like(x)
    for i, j in np.ndindex(*dY.shape[1:3]):
        win = x[:, i * P : (i + 1) * P, j * P : (j + 1) * P, :]
        dX[:, i * P : (i + 1) * P, j * P : (j + 1) * P, :] = share(win, dY[:, i : i + 1, j : j + 1, :])
    return dX


MISTAKES = [
    (
        "the gradient went to every maximum of a tied window; it goes to the FIRST maximum only (np.argmax's choice).",
        lambda x, dY, P: _per_window(x, dY, P, lambda w, g: (w == w.max(axis=(1, 2), keepdims=True)) * g),
    ),
    (
        "the gradient went to the LAST maximum of a tied window; it goes to the FIRST one (row-major order).",
        lambda x, dY, P: _route(x, dY, P, _last),
    ),
    (
        "row and column inside the window are swapped: the flat index k of a P x P window is at row k // P, column "
        "k % P.",
        lambda x, dY, P: _route(x, dY, P, lambda w: np.unravel_index(np.argmax(w), w.shape)[::-1]),
    ),
    (
        "the gradient went to each window's MINIMUM; it belongs to the maximum, the input that won the window.",
        lambda x, dY, P: _route(x, dY, P, lambda w: np.unravel_index(np.argmin(w), w.shape)),
    ),
    (
        "the gradient was spread evenly over each window (average pooling's rule); max pooling sends it all to the "
        "maximum.",
        lambda x, dY, P: _per_window(x, dY, P, lambda w, g: np.broadcast_to(g / (P * P), w.shape)),
    ),
]


def explain(args, got):
    """For the first window whose gradient landed in the wrong place: where it went and where its maximum is."""
    x, dY, P = args["x"], args["dY"], args["P"]
    got = np.asarray(got[0], np.float64)
    if got.shape != x.shape:
        return []
    want = expected(args)["dX"]
    for n, i, j, c in np.ndindex(*dY.shape):
        rows, cols = slice(i * P, (i + 1) * P), slice(j * P, (j + 1) * P)
        g, w = got[n, rows, cols, c], want[n, rows, cols, c]
        if np.allclose(g, w):
            continue
        a, b = np.unravel_index(np.argmax(w != 0), w.shape)
        moved = np.argwhere(g != 0)
        where = ", ".join(f"x[{n}, {i * P + p}, {j * P + q}, {c}]" for p, q in moved) or "nowhere"
        span = f"x rows {i * P}..{(i + 1) * P - 1}, columns {j * P}..{(j + 1) * P - 1}"
        return [
            f"window dY[{n}, {i}, {j}, {c}] ({span}):"
            f" its first maximum is x[{n}, {i * P + a}, {j * P + b}, {c}] = {x[n, i * P + a, j * P + b, c]:.4g};"
            f" your gradient went to {where}."
        ]
    return []
