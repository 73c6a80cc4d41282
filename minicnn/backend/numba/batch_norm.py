"""Batch-normalization kernels over a matrix ``(M, C)``: rows are the M = N*H*W positions, columns the channels.

The sums over rows (the variance's, the backward's two) are split into ``PARTS`` parts: part ``k`` sums the rows
``k, k + PARTS, k + 2*PARTS, ...`` into its own row of ``partial`` (whole rows read, no shared writes), and the
caller adds the ``PARTS`` rows (the mean's plain sum is ``elementwise.column_sums``, split into blocks of rows).
The number of parts is fixed, so results do not depend on the number of threads; they differ from NumPy's order of
summation only by rounding (float32 about 1e-6 relative, float64 1e-15). The elementwise kernels run over rows and
do the reference's operations in its order, so given the same statistics their results are the reference's to the
last bit.
"""

from __future__ import annotations

from numba import njit, prange

PARTS = 64  # parts of each sum over rows (the partial sums are (PARTS, C))


@njit(parallel=True, cache=True)
def squared_deviation_sums(x, mean, partial):
    """``partial[k, c]`` = the sum of ``(x[m, c] - mean[c])^2`` over the rows ``m`` of part ``k``."""
    rows, cols = x.shape
    parts = partial.shape[0]
    for k in prange(parts):
        acc = partial[k]
        acc[:] = 0.0
        for m in range(k, rows, parts):
            for c in range(cols):
                d = x[m, c] - mean[c]
                acc[c] += d * d
    return partial


@njit(parallel=True, cache=True)
def gradient_sums(dy, xhat, partial):
    """``partial[0, k, c]`` = the sum of ``dy[m, c]`` and ``partial[1, k, c]`` = the sum of ``dy[m, c] * xhat[m, c]``
    over the rows ``m`` of part ``k`` (the backward's two sums in one pass)."""
    rows, cols = dy.shape
    parts = partial.shape[1]
    for k in prange(parts):
        acc_dy, acc_dyx = partial[0, k], partial[1, k]
        acc_dy[:] = 0.0
        acc_dyx[:] = 0.0
        for m in range(k, rows, parts):
            for c in range(cols):
                g = dy[m, c]
                acc_dy[c] += g
                acc_dyx[c] += g * xhat[m, c]
    return partial


@njit(parallel=True, cache=True)
def normalize(x, mean, inv_std, gamma, beta, y, xhat):
    """``xhat = (x - mean) * inv_std`` and ``y = xhat * gamma + beta``, per row."""
    rows, cols = x.shape
    for m in prange(rows):
        for c in range(cols):
            h = (x[m, c] - mean[c]) * inv_std[c]
            xhat[m, c] = h
            y[m, c] = h * gamma[c] + beta[c]
    return y, xhat


@njit(parallel=True, cache=True)
def input_gradient(dy, xhat, mean_dy, mean_dyx, scale, training, dx):
    """``dx = (dy - mean_dy - xhat * mean_dyx) * scale`` (training), or ``dx = dy * scale``, per row."""
    rows, cols = dy.shape
    for m in prange(rows):
        for c in range(cols):
            if training:
                v = dy[m, c] - mean_dy[c]
                v = v - xhat[m, c] * mean_dyx[c]
                dx[m, c] = v * scale[c]
            else:
                dx[m, c] = dy[m, c] * scale[c]
    return dx
