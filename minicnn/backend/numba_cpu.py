"""Numba kernels for the CPU: the same results as :mod:`numpy_ref`, in parallel loops.

Each kernel is a plain loop nest, parallel (``prange``) over an outer axis whose iterations write disjoint
outputs, so no two threads ever write the same element:

- ``im2col``: over rows ``(n, oh)``, each writes its own rows of the column matrix;
- ``col2im`` in GATHER form: over input rows ``(n, h)``, each input pixel sums the column entries that
  were read from it (no scatter, hence no write race and no ``np.add.at``);
- max-pool forward: over ``(n, oh)``; backward in gather form too: over input rows ``(n, h)``;
- fused bias + ReLU and its backward: over rows.

Kernels are compiled on first use and cached on disk (``cache=True``), once per dtype.

Threads: unless ``NUMBA_THREADING_LAYER`` says otherwise, Numba's own ``workqueue`` pool is used. The OpenMP
layer's idle threads spin, and so do OpenBLAS's after each matrix product; on a 2-core machine the two pools
then fight for the cores and every small parallel kernel waited about 8 ms (a training step measured 136 ms
with OpenMP against 71 ms with workqueue, and 103 ms for the plain NumPy backend).
"""

from __future__ import annotations

import os

import numba
import numpy as np
from numba import njit, prange

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

from . import Backend, numpy_ref
from .geometry import Window


@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, sh, sw, pt, pl, oh, ow, out):
    # One output row per (n, oh, ow). For a kernel row i fully inside the image, its kw*c values are contiguous
    # in x and in the output row: one run of copies; taps in the padding are zeros.
    n, h, w, c = x.shape
    xf = x.reshape(n * h * w * c)
    run = kw * c
    for b in prange(n):
        for yo in range(oh):
            h0 = yo * sh - pt
            for xo in range(ow):
                w0 = xo * sw - pl
                r = (b * oh + yo) * ow + xo
                inside_w = w0 >= 0 and w0 + kw <= w
                for i in range(kh):
                    hh = h0 + i
                    dst = i * run
                    if hh < 0 or hh >= h:
                        for t in range(run):
                            out[r, dst + t] = 0.0
                    elif inside_w:
                        src = ((b * h + hh) * w + w0) * c
                        for t in range(run):
                            out[r, dst + t] = xf[src + t]
                    else:
                        for j in range(kw):
                            ww = w0 + j
                            for ch in range(c):
                                out[r, dst + j * c + ch] = x[b, hh, ww, ch] if 0 <= ww < w else 0.0
    return out


@njit(parallel=True, cache=True)
def _col2im(cols, kh, kw, sh, sw, pt, pl, oh, ow, dx):
    n, h, w, c = dx.shape
    for row in prange(n * h):
        b, hh = row // h, row % h
        for ww in range(w):
            for ch in range(c):
                dx[b, hh, ww, ch] = 0.0
            for i in range(kh):
                t = hh + pt - i
                if t < 0 or t % sh != 0:
                    continue
                y = t // sh
                if y >= oh:
                    continue
                for j in range(kw):
                    u = ww + pl - j
                    if u < 0 or u % sw != 0:
                        continue
                    xo = u // sw
                    if xo >= ow:
                        continue
                    r = (b * oh + y) * ow + xo
                    base = (i * kw + j) * c
                    for ch in range(c):
                        dx[b, hh, ww, ch] += cols[r, base + ch]
    return dx


@njit(parallel=True, cache=True)
def _maxpool_forward(x, kh, kw, sh, sw, pt, pl, y, argmax):
    # The window's valid taps are computed once (no test per tap); the channel loop is innermost and contiguous.
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for b in prange(n):
        for yo in range(oh):
            h0 = yo * sh - pt
            i_lo, i_hi = max(0, -h0), min(kh, h - h0)
            for xo in range(ow):
                w0 = xo * sw - pl
                j_lo, j_hi = max(0, -w0), min(kw, w - w0)
                best, where = y[b, yo, xo], argmax[b, yo, xo]
                first = x[b, h0 + i_lo, w0 + j_lo]
                for ch in range(c):
                    best[ch] = first[ch]
                    where[ch] = i_lo * kw + j_lo
                for i in range(i_lo, i_hi):
                    for j in range(j_lo, j_hi):
                        if i == i_lo and j == j_lo:
                            continue
                        k = i * kw + j
                        tap = x[b, h0 + i, w0 + j]
                        for ch in range(c):
                            if tap[ch] > best[ch]:  # strict: the FIRST maximum wins ties
                                best[ch] = tap[ch]
                                where[ch] = k
    return y, argmax


@njit(parallel=True, cache=True)
def _maxpool_backward(dy, argmax, kh, kw, sh, sw, pt, pl, dx):
    # Gather form, like col2im: each input pixel sums dy over the windows whose winner it is.
    n, oh, ow, c = dy.shape
    _, h, w, _ = dx.shape
    for row in prange(n * h):
        b, hh = row // h, row % h
        for ww in range(w):
            for ch in range(c):
                dx[b, hh, ww, ch] = 0.0
            for i in range(kh):
                t = hh + pt - i
                if t < 0 or t % sh != 0:
                    continue
                yo = t // sh
                if yo >= oh:
                    continue
                for j in range(kw):
                    u = ww + pl - j
                    if u < 0 or u % sw != 0:
                        continue
                    xo = u // sw
                    if xo >= ow:
                        continue
                    k = i * kw + j
                    for ch in range(c):
                        if argmax[b, yo, xo, ch] == k:
                            dx[b, hh, ww, ch] += dy[b, yo, xo, ch]
    return dx


@njit(parallel=True, cache=True)
def _bias_relu(z, bias):
    rows, cols = z.shape
    for r in prange(rows):
        for f in range(cols):
            v = z[r, f] + bias[f]
            z[r, f] = v if (v > 0 or v != v) else 0.0   # NaN stays NaN, as in np.maximum
    return z


@njit(parallel=True, cache=True)
def _relu_backward(dy, y, out):
    rows, cols = dy.shape
    for r in prange(rows):
        for f in range(cols):
            out[r, f] = dy[r, f] if y[r, f] > 0 else 0.0
    return out


@njit(parallel=True, cache=True)
def _column_sums(a, partial):
    # Sum over rows, in parallel: each of the partial.shape[0] blocks of rows sums into its own row of `partial`.
    rows, cols = a.shape
    blocks = partial.shape[0]
    step = (rows + blocks - 1) // blocks
    for blk in prange(blocks):
        acc = partial[blk]
        for f in range(cols):
            acc[f] = 0.0
        for r in range(blk * step, min(rows, (blk + 1) * step)):
            src = a[r]
            for f in range(cols):
                acc[f] += src[f]
    return partial


@njit(parallel=True, cache=True)
def _dropout_mask(uniform, rate, scale, out):
    flat_u, flat_o = uniform.ravel(), out.ravel()
    for i in prange(flat_u.size):
        flat_o[i] = scale if flat_u[i] >= rate else 0.0
    return out


def _as_2d(a):
    return a.reshape(-1, a.shape[-1])


class NumbaBackend(Backend):
    """NumPy arrays, Numba-parallel kernels, matrix products through NumPy's BLAS."""

    name = "numba"

    def im2col(self, x, win: Window, out=None):
        x = np.ascontiguousarray(x)
        n, _, _, c = x.shape
        if out is None:
            out = np.empty((n * win.out_h * win.out_w, win.kh * win.kw * c), dtype=x.dtype)
        return _im2col(x, win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left, win.out_h, win.out_w, out)

    def col2im(self, cols, x_shape, win: Window, out=None):
        dx = np.empty(x_shape, dtype=cols.dtype) if out is None else out
        return _col2im(np.ascontiguousarray(cols), win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left,
                       win.out_h, win.out_w, dx)

    def maxpool_forward(self, x, win: Window, out=None, argmax_out=None):
        x = np.ascontiguousarray(x)
        n, _, _, c = x.shape
        y = np.empty((n, win.out_h, win.out_w, c), dtype=x.dtype) if out is None else out
        argmax = np.empty(y.shape, dtype=np.int32) if argmax_out is None else argmax_out
        return _maxpool_forward(x, win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left, y, argmax)

    def maxpool_backward(self, dy, argmax, x_shape, win: Window, out=None):
        dx = np.empty(x_shape, dtype=dy.dtype) if out is None else out
        return _maxpool_backward(np.ascontiguousarray(dy), argmax, win.kh, win.kw, win.sh, win.sw, win.pad_top,
                                 win.pad_left, dx)

    def bias_relu(self, z, bias):
        if not z.flags.c_contiguous:
            return super().bias_relu(z, bias)
        _bias_relu(_as_2d(z), bias)
        return z

    def relu_backward(self, dy, y, out=None):
        dy, y = np.ascontiguousarray(dy), np.ascontiguousarray(y)
        out = np.empty_like(dy) if out is None else out
        _relu_backward(_as_2d(dy), _as_2d(y), _as_2d(out))
        return out

    def bias_gradient(self, grad_z, out):
        if grad_z.shape[0] < 4096 or not grad_z.flags.c_contiguous:
            return super().bias_gradient(grad_z, out)
        partial = _column_sums(grad_z, np.empty((64, grad_z.shape[1]), dtype=grad_z.dtype))
        return partial.sum(axis=0, out=out)

    def weight_gradient(self, cols, grad_z, out):
        # The first conv's dW sums 73,728 rows into a 25 x 32 result: OpenBLAS splits such a long sum poorly
        # (35 GFLOP/s measured); one product per sample, then a sum over samples, ran 2.4x faster.
        return numpy_ref.weight_gradient_split(np, cols, grad_z, out)

    def dropout_mask(self, uniform, rate: float, out=None):
        uniform = np.ascontiguousarray(uniform)
        out = np.empty_like(uniform) if out is None else out
        return _dropout_mask(uniform, uniform.dtype.type(rate), uniform.dtype.type(1.0 / (1.0 - rate)), out)
