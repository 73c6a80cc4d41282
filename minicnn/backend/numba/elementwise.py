"""Row-wise and elementwise kernels: bias + ReLU and its backward, column sums, matrix products split by rows, the
weight gradient's partial sums, dropout, and NumPy's float32 uniform numbers from PCG64's raw output.

Each is parallel (``prange``) over an axis whose iterations write disjoint outputs. Matrix products run inside
Numba's threads, each calling BLAS held to one thread (see :mod:`.threads`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def bias_relu(z, bias):
    """In place ``z <- max(z + bias, 0)`` over the rows of a matrix ``z``; NaN stays NaN, as in ``np.maximum``."""
    rows, cols = z.shape
    for r in prange(rows):
        for f in range(cols):
            v = z[r, f] + bias[f]
            z[r, f] = v if (v > 0 or v != v) else 0.0
    return z


@njit(parallel=True, cache=True)
def relu_backward(dy, y, out):
    """``out = dy * [y > 0]`` over the rows of matrices."""
    rows, cols = dy.shape
    for r in prange(rows):
        for f in range(cols):
            out[r, f] = dy[r, f] if y[r, f] > 0 else 0.0
    return out


@njit(cache=True, inline="always")
def _row_block(part, parts, rows):
    # The rows [lo, hi) of block `part` when `rows` rows are split into `parts` nearly equal blocks.
    step = (rows + parts - 1) // parts
    return min(rows, part * step), min(rows, (part + 1) * step)


@njit(parallel=True, cache=True)
def column_sums(a, partial):
    """The sum of ``a`` over rows, in parallel: each of the ``partial.shape[0]`` blocks of rows sums into its own row
    of ``partial`` (the caller adds those rows)."""
    rows, cols = a.shape
    blocks = partial.shape[0]
    for blk in prange(blocks):
        acc = partial[blk]
        for f in range(cols):
            acc[f] = 0.0
        lo, hi = _row_block(blk, blocks, rows)
        for r in range(lo, hi):
            src = a[r]
            for f in range(cols):
                acc[f] += src[f]
    return partial


@njit(parallel=True, cache=True)
def matmul_rows(a, b, out, parts):
    """``out = a @ b``, each of ``parts`` threads multiplying its own block of rows of ``a`` (the caller holds BLAS to
    one thread)."""
    for part in prange(parts):
        lo, hi = _row_block(part, parts, a.shape[0])
        if lo < hi:
            np.dot(a[lo:hi], b, out[lo:hi])
    return out


@njit(parallel=True, cache=True)
def weight_gradient_parts(a, dz, partial):
    """``a^T @ dz`` as a sum over blocks of rows: each thread multiplies its block into its own ``partial[part]``
    (the caller adds the parts)."""
    parts = partial.shape[0]
    for part in prange(parts):
        lo, hi = _row_block(part, parts, a.shape[0])
        if lo < hi:
            np.dot(a[lo:hi].T, dz[lo:hi], partial[part])
        else:
            partial[part][:] = 0.0
    return partial


UNIFORM32_STEP = np.float32(2.0**-24)  # NumPy's float32 uniform from a 32-bit draw u: (u >> 8) * 2^-24


@njit(parallel=True, cache=True)
def uniform32_from_raw(halves, out):
    """NumPy's float32 uniforms from PCG64's 64-bit outputs seen as 32-bit ``halves`` (low half first: a little-endian
    view), each exact in float32. ``out`` takes the first ``out.size`` halves."""
    for k in prange(out.size):
        out[k] = np.float32(np.int32(halves[k] >> np.uint32(8))) * UNIFORM32_STEP


@njit(cache=True, inline="always")
def _keep(u, rate, scale):
    # Inverted dropout's multiplier for one uniform u: kept (u >= rate) and scaled by 1 / (1 - rate), or dropped.
    return scale if u >= rate else 0.0


@njit(parallel=True, cache=True)
def dropout_mask(uniform, rate, scale, out):
    """``out = scale * [uniform >= rate]`` (``scale = 1 / (1 - rate)``: inverted dropout's multiplier)."""
    flat_u, flat_o = uniform.reshape(uniform.size), out.reshape(out.size)
    for i in prange(flat_u.size):
        flat_o[i] = _keep(flat_u[i], rate, scale)
    return out


@njit(parallel=True, cache=True)
def dropout_apply(x, uniform, rate, scale, y, mask):
    """:func:`dropout_mask` into ``mask`` and ``y = x * mask`` in one pass (the same roundings as the reference: none,
    then one product)."""
    flat_x, flat_u = x.reshape(x.size), uniform.reshape(uniform.size)
    flat_y, flat_m = y.reshape(y.size), mask.reshape(mask.size)  # views (ravel may copy in a parallel function)
    for i in prange(flat_u.size):
        m = _keep(flat_u[i], rate, scale)
        flat_m[i] = m
        flat_y[i] = flat_x[i] * m
    return y, mask
