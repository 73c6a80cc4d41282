"""Numba kernels for the CPU: the same results as :mod:`numpy_ref`, in parallel loops.

Each kernel is a plain loop nest, parallel (``prange``) over an outer axis whose iterations write disjoint
outputs, so no two threads ever write the same element:

- ``im2col``: over rows ``(n, oh)``, each writes its own rows of the column matrix;
- ``col2im`` in GATHER form: over input rows ``(n, h)``, each input pixel sums the column entries that
  were read from it (no scatter, hence no write race and no ``np.add.at``);
- max-pool forward: over ``(n, oh)``; backward: over samples ``n`` (a sample's windows only touch its own pixels);
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

from . import Backend
from .geometry import Window


@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, sh, sw, pt, pl, oh, ow, out):
    n, h, w, c = x.shape
    for row in prange(n * oh):
        b, y = row // oh, row % oh
        for xo in range(ow):
            r = (b * oh + y) * ow + xo
            for i in range(kh):
                hh = y * sh + i - pt
                for j in range(kw):
                    ww = xo * sw + j - pl
                    base = (i * kw + j) * c
                    if 0 <= hh < h and 0 <= ww < w:
                        for ch in range(c):
                            out[r, base + ch] = x[b, hh, ww, ch]
                    else:
                        for ch in range(c):
                            out[r, base + ch] = 0.0
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
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for row in prange(n * oh):
        b, yo = row // oh, row % oh
        for xo in range(ow):
            for ch in range(c):
                best = -np.inf
                best_k = 0
                for i in range(kh):
                    hh = yo * sh + i - pt
                    if hh < 0 or hh >= h:
                        continue
                    for j in range(kw):
                        ww = xo * sw + j - pl
                        if ww < 0 or ww >= w:
                            continue
                        v = x[b, hh, ww, ch]
                        if v > best:  # strict: the FIRST maximum wins ties
                            best = v
                            best_k = i * kw + j
                y[b, yo, xo, ch] = best
                argmax[b, yo, xo, ch] = best_k
    return y, argmax


@njit(parallel=True, cache=True)
def _maxpool_backward(dy, argmax, kw, sh, sw, pt, pl, dx):
    n, oh, ow, c = dy.shape
    _, h, w, _ = dx.shape
    for b in prange(n):
        dx[b] = 0.0
        for yo in range(oh):
            for xo in range(ow):
                for ch in range(c):
                    k = argmax[b, yo, xo, ch]
                    hh = yo * sh + k // kw - pt
                    ww = xo * sw + k % kw - pl
                    dx[b, hh, ww, ch] += dy[b, yo, xo, ch]
    return dx


@njit(parallel=True, cache=True)
def _bias_relu(z, bias):
    rows, cols = z.shape
    for r in prange(rows):
        for f in range(cols):
            v = z[r, f] + bias[f]
            z[r, f] = v if v > 0 else 0.0
    return z


@njit(parallel=True, cache=True)
def _relu_backward(dy, y, out):
    rows, cols = dy.shape
    for r in prange(rows):
        for f in range(cols):
            out[r, f] = dy[r, f] if y[r, f] > 0 else 0.0
    return out


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

    def col2im(self, cols, x_shape, win: Window):
        dx = np.empty(x_shape, dtype=cols.dtype)
        return _col2im(np.ascontiguousarray(cols), win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left,
                       win.out_h, win.out_w, dx)

    def maxpool_forward(self, x, win: Window):
        x = np.ascontiguousarray(x)
        n, _, _, c = x.shape
        y = np.empty((n, win.out_h, win.out_w, c), dtype=x.dtype)
        argmax = np.empty(y.shape, dtype=np.int32)
        return _maxpool_forward(x, win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left, y, argmax)

    def maxpool_backward(self, dy, argmax, x_shape, win: Window):
        dx = np.empty(x_shape, dtype=dy.dtype)
        return _maxpool_backward(np.ascontiguousarray(dy), argmax, win.kw, win.sh, win.sw, win.pad_top,
                                 win.pad_left, dx)

    def bias_relu(self, z, bias):
        if not z.flags.c_contiguous:
            return super().bias_relu(z, bias)
        _bias_relu(_as_2d(z), bias)
        return z

    def relu_backward(self, dy, y):
        dy, y = np.ascontiguousarray(dy), np.ascontiguousarray(y)
        out = np.empty_like(dy)
        _relu_backward(_as_2d(dy), _as_2d(y), _as_2d(out))
        return out

    def dropout_mask(self, uniform, rate: float):
        uniform = np.ascontiguousarray(uniform)
        out = np.empty_like(uniform)
        return _dropout_mask(uniform, uniform.dtype.type(rate), uniform.dtype.type(1.0 / (1.0 - rate)), out)
