"""Pooling kernels. Max pooling: the forward pass over output rows, the backward pass in gather form (or, for windows
that tile the input, each window writing its own pixels). Average pooling: the same two forms of loop, summing."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .taps import taps_inside, window_reading


@njit(cache=True, inline="always")
def _max_of_four(t0, t1, t2, t3, k2, best, where):
    # A 2x2 window inside the image: taps t0, t1 (row 0) and t2, t3 (row 1; t2's index is k2 = KW). Every value
    # and index stays in registers, and the loop over channels vectorises (see docs/performance.md,
    # "Max-pooling"); strict comparisons in tap order, so the first maximum wins ties as in the general loop.
    for ch in range(best.size):
        m, k = t0[ch], np.int32(0)
        v = t1[ch]
        if v > m:
            m, k = v, np.int32(1)
        v = t2[ch]
        if v > m:
            m, k = v, k2
        v = t3[ch]
        if v > m:
            m, k = v, k2 + np.int32(1)
        best[ch] = m
        where[ch] = k


@njit(parallel=True, cache=True)
def maxpool_forward(x, win, y, argmax):
    """Each window's maximum into ``y`` and the index ``i*KW + j`` of its first maximum into ``argmax``, parallel over
    samples. The window's valid taps are computed once (no test per tap); the channel loop is innermost and
    contiguous, its updates written as selects (unconditional stores) so that it vectorises. 2x2 windows inside the
    image (the usual pooling) keep all four taps in registers."""
    kh, kw, sh, sw, pt, pl = win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    k2 = np.int32(kw)
    for b in prange(n):
        for yo in range(oh):
            h0 = yo * sh - pt
            i_lo, i_hi = taps_inside(h0, kh, h)
            for xo in range(ow):
                w0 = xo * sw - pl
                j_lo, j_hi = taps_inside(w0, kw, w)
                best, where = y[b, yo, xo], argmax[b, yo, xo]
                if kh == 2 and kw == 2 and i_lo == 0 and j_lo == 0 and i_hi == 2 and j_hi == 2:
                    top, bottom = x[b, h0], x[b, h0 + 1]
                    _max_of_four(top[w0], top[w0 + 1], bottom[w0], bottom[w0 + 1], k2, best, where)
                    continue
                first = x[b, h0 + i_lo, w0 + j_lo]
                k0 = np.int32(i_lo * kw + j_lo)
                for ch in range(c):
                    best[ch] = first[ch]
                    where[ch] = k0
                for i in range(i_lo, i_hi):
                    for j in range(j_lo, j_hi):
                        if i == i_lo and j == j_lo:
                            continue
                        k = np.int32(i * kw + j)
                        tap = x[b, h0 + i, w0 + j]
                        for ch in range(c):
                            v, m = tap[ch], best[ch]
                            up = v > m  # strict: the FIRST maximum wins ties
                            best[ch] = v if up else m
                            where[ch] = k if up else where[ch]
    return y, argmax


@njit(parallel=True, cache=True)
def maxpool_backward(dy, argmax, win, dx):
    """Gather form, like col2im: each input pixel of ``dx`` sums ``dy`` over the windows whose winner it is,
    parallel over input rows."""
    kh, kw, sh, sw, pt, pl = win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left
    n, oh, ow, c = dy.shape
    _, h, w, _ = dx.shape
    for row in prange(n * h):
        b, hh = row // h, row % h
        for ww in range(w):
            for ch in range(c):
                dx[b, hh, ww, ch] = 0.0
            for i in range(kh):
                yo = window_reading(hh, pt, i, sh, oh)
                if yo < 0:
                    continue
                for j in range(kw):
                    xo = window_reading(ww, pl, j, sw, ow)
                    if xo < 0:
                        continue
                    k = i * kw + j
                    for ch in range(c):
                        if argmax[b, yo, xo, ch] == k:
                            dx[b, hh, ww, ch] += dy[b, yo, xo, ch]
    return dx


@njit(parallel=True, cache=True)
def maxpool_backward_tiled(dy, argmax, win, dx):
    """:func:`maxpool_backward` for windows that tile the input (stride = window, no padding): each input pixel lies
    in at most one window, so each window writes its own pixels: dy at its winner, zero elsewhere (pixels left over
    at the edges: zero)."""
    kh, kw = win.kh, win.kw
    n, oh, ow, c = dy.shape
    _, h, w, _ = dx.shape
    for b in prange(n):
        if oh * kh < h or ow * kw < w:
            dx[b] = 0.0
        for yo in range(oh):
            for i in range(kh):
                for xo in range(ow):
                    for j in range(kw):
                        k = i * kw + j
                        row = dx[b, yo * kh + i, xo * kw + j]
                        for ch in range(c):
                            row[ch] = dy[b, yo, xo, ch] if argmax[b, yo, xo, ch] == k else 0.0
    return dx


@njit(parallel=True, cache=True)
def avgpool_forward(x, counts, win, y):
    """Each window's sum over its real cells divided by ``counts[oh, ow]`` (their number, in ``x``'s dtype: padding
    is neither added nor counted), parallel over output rows. The taps are added in the reference's order (i, then
    j), so the results are the reference's to the last bit."""
    kh, kw, sh, sw, pt, pl = win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for row in prange(n * oh):
        b, yo = row // oh, row % oh
        h0 = yo * sh - pt
        i_lo, i_hi = taps_inside(h0, kh, h)
        for xo in range(ow):
            w0 = xo * sw - pl
            j_lo, j_hi = taps_inside(w0, kw, w)
            acc = y[b, yo, xo]
            for ch in range(c):
                acc[ch] = 0.0
            for i in range(i_lo, i_hi):
                for j in range(j_lo, j_hi):
                    tap = x[b, h0 + i, w0 + j]
                    for ch in range(c):
                        acc[ch] += tap[ch]
            count = counts[yo, xo]
            for ch in range(c):
                acc[ch] /= count
    return y


@njit(parallel=True, cache=True)
def avgpool_backward(dy, counts, win, dx):
    """Gather form, like col2im: each input pixel of ``dx`` sums ``dy / counts`` over the windows that cover it
    (in the reference's order), parallel over input rows."""
    kh, kw, sh, sw, pt, pl = win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left
    n, oh, ow, c = dy.shape
    _, h, w, _ = dx.shape
    for row in prange(n * h):
        b, hh = row // h, row % h
        for ww in range(w):
            acc = dx[b, hh, ww]
            for ch in range(c):
                acc[ch] = 0.0
            for i in range(kh):
                yo = window_reading(hh, pt, i, sh, oh)
                if yo < 0:
                    continue
                for j in range(kw):
                    xo = window_reading(ww, pl, j, sw, ow)
                    if xo < 0:
                        continue
                    count = counts[yo, xo]
                    g = dy[b, yo, xo]
                    for ch in range(c):
                        acc[ch] += g[ch] / count
    return dx
