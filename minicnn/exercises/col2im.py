"""Exercise: col2im, the adjoint of im2col (how a convolution's dX is assembled), checked against
minicnn.backend.numpy_ref.col2im and against the gradient of <im2col(x), cols>."""

from __future__ import annotations

import numpy as np

from ..backend import numpy_ref
from ..backend.geometry import make_window
from ..gradcheck import numerical_gradient

NAME = "col2im"
TITLE = "col2im: adding the columns of a convolution's backward pass back into image positions"
FUNCTION = "col2im"
OUTPUTS = ("dX",)
SHAPE_OF = {"dX": " (x_shape)"}

TEMPLATE = '''"""Exercise col2im: the adjoint of im2col, which turns a convolution's column gradient into dX.

im2col (what minicnn.backend.numpy_ref.im2col computes, padding "valid") copies every K x K window
of an NHWC image x (N, H, W, C), taken with stride S, into one row of a matrix:

    OH = (H - K) // S + 1        OW = (W - K) // S + 1
    cols: (N * OH * OW, K * K * C)
    cols[(n * OH + oh) * OW + ow, (i * K + j) * C + c] = x[n, oh*S + i, ow*S + j, c]

so that a convolution is one matrix product, cols @ kernel.reshape(K * K * C, F).

Backward: given dcols = dL/dcols of the shape of cols, compute dX = dL/dx, of shape x_shape.
Each entry of cols is a copy of one pixel, so each pixel's gradient is the SUM of the gradients
of all its copies. When windows overlap (S < K) a pixel has several copies; a pixel in no window
gets 0. (col2im is im2col's adjoint: sum(im2col(x) * dcols) == sum(x * col2im(dcols)) for all x.)

Check your answer with:  python -m minicnn.exercises check col2im
"""

import numpy as np


def col2im(dcols, x_shape, K, S):
    """Return dX of shape x_shape = (N, H, W, C) from dcols (N * OH * OW, K * K * C)."""
    raise NotImplementedError
'''


def _scatter(dcols, x_shape, K, S, order="ijc", accumulate=True):
    n, h, w, c = x_shape
    oh, ow = (h - K) // S + 1, (w - K) // S + 1
    rows = dcols.reshape(n, oh, ow, *((c, K, K) if order == "cij" else (K, K, c)))
    if order == "cij":
        rows = rows.transpose(0, 1, 2, 4, 5, 3)
    elif order == "jic":
        rows = rows.transpose(0, 1, 2, 4, 3, 5)
    dX = np.zeros(x_shape)
    for a, b in np.ndindex(oh, ow):
        block = dX[:, a * S : a * S + K, b * S : b * S + K, :]
        block[...] = block + rows[:, a, b] if accumulate else rows[:, a, b]
    return dX


def reference(dcols, x_shape, K, S):
    return _scatter(dcols, x_shape, K, S)


def cases():
    rng = np.random.default_rng(18)
    out = []
    for x_shape, k, s, note in [
        ((1, 4, 4, 1), 2, 1, "overlapping windows"),
        ((2, 5, 6, 3), 3, 1, "overlapping windows, 3 channels"),
        ((2, 7, 7, 2), 3, 2, "stride 2, windows overlap by one"),
        ((1, 5, 6, 2), 2, 2, "stride 2, no overlap; the last row is in no window"),
    ]:
        n, h, w, c = x_shape
        rows = n * ((h - k) // s + 1) * ((w - k) // s + 1)
        out.append(
            (
                f"x_shape {x_shape}, K {k}, S {s} ({note})",
                {"dcols": rng.standard_normal((rows, k * k * c)), "x_shape": x_shape, "K": k, "S": s},
            )
        )
    return out


def _window(args):
    _, h, w, _ = args["x_shape"]
    return make_window(h, w, (args["K"],) * 2, (args["S"],) * 2, "valid")


def expected(args):
    return {"dX": numpy_ref.col2im(np, args["dcols"], args["x_shape"], _window(args))}


def numerical(args):
    """dL/dx for L = sum(im2col(x) * dcols): col2im(dcols), by central differences."""
    x = np.random.default_rng(0).standard_normal(args["x_shape"])
    win = _window(args)
    return {"dX": numerical_gradient(lambda: float(np.sum(numpy_ref.im2col(np, x, win) * args["dcols"])), x)}


MISTAKES = [
    (
        "pixels covered by several windows got only one window's gradient: ADD each window's part (+=), do not "
        "overwrite it (=).",
        lambda dcols, x_shape, K, S: _scatter(dcols, x_shape, K, S, accumulate=False),
    ),
    (
        "the columns were read in (c, i, j) order; im2col lays each row out as (i, j, c): column (i * K + j) * C + c.",
        lambda dcols, x_shape, K, S: _scatter(dcols, x_shape, K, S, order="cij"),
    ),
    (
        "i and j are swapped: column (i * K + j) * C + c holds window row i, window column j.",
        lambda dcols, x_shape, K, S: _scatter(dcols, x_shape, K, S, order="jic"),
    ),
]
