"""Exercise: a convolution's weight gradient dW (and db), checked against minicnn.layers.Conv2D."""

from __future__ import annotations

import numpy as np

from ..backend import get_backend
from ..gradcheck import numerical_gradient
from ..layers import Conv2D

NAME = "conv2d_weight_gradient"
TITLE = "a convolution's kernel and bias gradients"
FUNCTION = "conv2d_weight_gradient"
OUTPUTS = ("dW", "db")
SHAPE_OF = {"dW": " (the kernel's shape (K, K, C, F))", "db": " (one entry per filter)"}

TEMPLATE = '''"""Exercise conv2d_weight_gradient: the gradients of a convolution's kernel and bias.

Forward (minicnn.layers.Conv2D with a K x K kernel, stride 1, padding "valid", before its activation), NHWC:

    x: (N, H, W, C)    W: (K, K, C, F)    b: (F,)    z: (N, OH, OW, F),  OH = H - K + 1,  OW = W - K + 1
    z[n, oh, ow, f] = b[f] + sum over i, j < K and c < C of x[n, oh + i, ow + j, c] * W[i, j, c, f]

(a cross-correlation, as in every deep-learning framework: the kernel is NOT flipped.)

Backward: given dZ = dL/dz, of shape (N, OH, OW, F), compute

    dW[i, j, c, f] = sum over n, oh, ow of x[n, oh + i, ow + j, c] * dZ[n, oh, ow, f]      shape (K, K, C, F)
    db[f]          = sum over n, oh, ow of dZ[n, oh, ow, f]                               shape (F,)

Hint: loop over the K*K offsets (i, j); for each, x[:, i:i+OH, j:j+OW, :] against dZ is one product
(np.einsum or a reshape and @). minicnn does all offsets at once with im2col: dW = im2col(x)^T @ dZ.

Check your answer with:  python -m minicnn.exercises check conv2d_weight_gradient
"""

import numpy as np


def conv2d_weight_gradient(x, dZ, K):
    """Return (dW, db): dW of shape (K, K, C, F), db of shape (F,), given x (N, H, W, C) and dZ (N, OH, OW, F)."""
    raise NotImplementedError
'''


def _dw(x, dZ, K, flip=False, per_sample=False):
    oh, ow = dZ.shape[1:3]
    dW = np.zeros((K, K, x.shape[-1], dZ.shape[-1]))
    for i in range(K):
        for j in range(K):
            a, b = (K - 1 - i, K - 1 - j) if flip else (i, j)
            dW[a, b] = np.einsum("nhwc,nhwf->cf", x[:, i : i + oh, j : j + ow, :], dZ)
    return dW / len(x) if per_sample else dW


def reference(x, dZ, K):
    return _dw(x, dZ, K), dZ.sum(axis=(0, 1, 2))


def cases():
    rng = np.random.default_rng(18)
    out = []
    for (n, h, w, c), k, f in [((2, 5, 6, 3), 3, 4), ((1, 4, 4, 1), 2, 2), ((3, 6, 5, 2), 3, 5)]:
        oh, ow = h - k + 1, w - k + 1
        out.append(
            (
                f"x {(n, h, w, c)}, K {k}, dZ {(n, oh, ow, f)}",
                {"x": rng.standard_normal((n, h, w, c)), "dZ": rng.standard_normal((n, oh, ow, f)), "K": k},
            )
        )
    return out


def _layer(x, dZ, K):
    layer = Conv2D(dZ.shape[-1], (K, K))
    layer.build(x.shape[1:], get_backend("numpy"), np.float64, np.random.default_rng(0))
    return layer


def expected(args):
    layer = _layer(args["x"], args["dZ"], args["K"])
    layer.forward(args["x"])
    layer.backward_linear(args["dZ"])
    return {"dW": layer.grads["kernel"].copy(), "db": layer.grads["bias"].copy()}


def numerical(args):
    """L = sum(conv(x) * dZ), so that dL/dz = dZ; central differences in the kernel and the bias."""
    layer = _layer(args["x"], args["dZ"], args["K"])

    def loss():
        return float(np.sum(layer.forward(args["x"]) * args["dZ"]))

    params = layer.params
    return {"dW": numerical_gradient(loss, params["kernel"]), "db": numerical_gradient(loss, params["bias"])}


MISTAKES = [
    (
        "the kernel gradient is flipped (a true convolution); Conv2D is a cross-correlation: dW[i, j] pairs "
        "x[n, oh + i, ow + j] with dZ[n, oh, ow], with no K - 1 - i.",
        lambda x, dZ, K: (_dw(x, dZ, K, flip=True), dZ.sum(axis=(0, 1, 2))),
    ),
    (
        "dW was divided by N: the sum over the batch is the gradient (the loss's 1/N is already inside dZ).",
        lambda x, dZ, K: (_dw(x, dZ, K, per_sample=True), dZ.sum(axis=(0, 1, 2))),
    ),
    (
        "db sums over the batch only; it sums over every output pixel too: db[f] = sum over n, oh, ow of dZ.",
        lambda x, dZ, K: (_dw(x, dZ, K), dZ.sum(axis=0)),
    ),
    (
        "i and j are swapped: dW[i, j] pairs row offset i and column offset j.",
        lambda x, dZ, K: (_dw(x, dZ, K).transpose(1, 0, 2, 3), dZ.sum(axis=(0, 1, 2))),
    ),
]
