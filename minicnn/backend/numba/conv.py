"""The convolution's kernels: im2col, col2im (gather form) and the fused forward and backward passes.

Every kernel takes the window geometry as one :class:`~minicnn.backend.geometry.Window` (a named tuple of ints).

The fused convolution: each thread takes a few samples at a time (about ``CHUNK_ROWS`` rows of the column matrix),
builds their im2col columns in a small buffer of its own that stays in cache, multiplies them at once, and adds the
bias and the ReLU (backward: forms dZ = dY * [y > 0], adds its share of dW and db, and gathers dX of those samples).
The full column matrix is never stored; the backward pass rebuilds it chunk by chunk from the input. For inputs with
few channels the columns of a sample are built transposed, one row per tap, so that the copies run along output
rows (see docs/performance.md, "The fused convolution").

Inner loops index views with the loop variable itself (``run[t]`` for ``t in range(n)``), never ``a[offset + t]``:
Numba cannot tell that ``offset + t`` is never negative, adds a wraparound test to every such access, and LLVM then
leaves the loop scalar. For runs too short to pay for a view, unsigned indices do the same: Numba tests only signed
ones (see docs/performance.md, "Copies by runs").
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .taps import taps_inside, window_reading


@njit(cache=True)
def _im2col_sample(x, b, win, out, row0):
    # Sample b's oh*ow rows of the column matrix, written from row row0 of out. For a kernel row i fully inside
    # the image, its kw*c values are contiguous in x and in the output row: one run of copies (through views, so
    # that LLVM vectorises it: see docs/performance.md, "Copies by runs"); padding is zeros.
    kh, kw, sh, sw, pt, pl, oh, ow = win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left, win.out_h, win.out_w
    n, h, w, c = x.shape
    xf = x.reshape(n * h * w * c)
    run = kw * c
    for yo in range(oh):
        h0 = yo * sh - pt
        for xo in range(ow):
            w0 = xo * sw - pl
            r = row0 + yo * ow + xo
            inside_w = w0 >= 0 and w0 + kw <= w
            for i in range(kh):
                hh = h0 + i
                dst = i * run
                out_run = out[r, dst : dst + run]
                if hh < 0 or hh >= h:
                    for t in range(run):
                        out_run[t] = 0.0
                elif inside_w:
                    src = ((b * h + hh) * w + w0) * c
                    x_run = xf[src : src + run]
                    for t in range(run):
                        out_run[t] = x_run[t]
                else:  # partly in the left or right padding: tap by tap
                    for j in range(kw):
                        out_tap = out_run[j * c : (j + 1) * c]
                        if 0 <= w0 + j < w:
                            x_tap = x[b, hh, w0 + j]
                            for ch in range(c):
                                out_tap[ch] = x_tap[ch]
                        else:
                            for ch in range(c):
                                out_tap[ch] = 0.0


@njit(parallel=True, cache=True)
def im2col(x, win, out):
    """The column matrix of ``x`` (``(N, H, W, C)``) into ``out`` (``(N*OH*OW, KH*KW*C)``), parallel over samples."""
    for b in prange(x.shape[0]):
        _im2col_sample(x, b, win, out, b * win.out_h * win.out_w)
    return out


@njit(cache=True)
def _col2im_row(cols, row0, b, hh, win, dx):
    # Gather form, a row at a time: input row hh of sample b sums the column entries read from it (sample b's
    # rows of cols start at row0). Kernel row i of window (y, xo) read the pixels w0 .. w0 + kw - 1 of this row
    # (those inside it): a run of values contiguous in the columns and in dx, added as one run through views
    # (see docs/performance.md, "Copies by runs").
    kh, kw, sh, sw, pt, pl, oh, ow = win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left, win.out_h, win.out_w
    _, h, w, c = dx.shape
    row = dx[b, hh].reshape(w * c)
    for t in range(w * c):
        row[t] = 0.0
    for i in range(kh):
        y = window_reading(hh, pt, i, sh, oh)
        if y < 0:
            continue
        for xo in range(ow - 1, -1, -1):  # windows right to left: each pixel sums its taps j in increasing order
            w0 = xo * sw - pl
            j_lo, j_hi = taps_inside(w0, kw, w)
            if j_lo >= j_hi:
                continue
            src = cols[row0 + y * ow + xo, (i * kw + j_lo) * c : (i * kw + j_hi) * c]
            dst = row[(w0 + j_lo) * c : (w0 + j_hi) * c]
            for t in range(src.size):
                dst[t] += src[t]


@njit(cache=True)
def _col2im_sample(cols, row0, b, win, dx):
    for hh in range(dx.shape[1]):
        _col2im_row(cols, row0, b, hh, win, dx)


@njit(parallel=True, cache=True)
def col2im(cols, win, dx):
    """The adjoint of :func:`im2col` into ``dx`` (``(N, H, W, C)``), in gather form, parallel over input rows (no two
    threads write the same pixel)."""
    n, h = dx.shape[0], dx.shape[1]
    rows_per_sample = win.out_h * win.out_w
    for row in prange(n * h):
        b, hh = row // h, row % h
        _col2im_row(cols, b * rows_per_sample, b, hh, win, dx)
    return dx


@njit(cache=True)
def _im2col_sample_by_tap(x, b, win, out):
    # Sample b's column matrix TRANSPOSED: out[(i, j, c), (oh, ow)], one row per tap holding that tap's value at
    # every output pixel. For inputs with few channels the copies then run along an output row instead of along a
    # patch row (see docs/performance.md, "The fused convolution").
    kh, kw, sh, sw, pt, pl, oh, ow = win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left, win.out_h, win.out_w
    _, h, w, c = x.shape
    if c == 1 and sw == 1:
        _im2col_sample_by_tap_one_channel(x, b, win, out)
        return
    for i in range(kh):
        for j in range(kw):
            for ch in range(c):
                row = out[(i * kw + j) * c + ch]
                for yo in range(oh):
                    hh = yo * sh - pt + i
                    inside = 0 <= hh < h
                    for xo in range(ow):
                        ww = xo * sw - pl + j
                        row[yo * ow + xo] = x[b, hh, ww, ch] if inside and 0 <= ww < w else 0.0


@njit(cache=True)
def _im2col_sample_by_tap_one_channel(x, b, win, out):
    # _im2col_sample_by_tap for one channel and a horizontal stride of 1 (the usual first layer): the pixels a tap
    # reads along an output row are contiguous in x, copied as one run. The runs are too short to pay for a view
    # each, so the indices are unsigned: Numba adds no wraparound test to those (see docs/performance.md,
    # "Copies by runs").
    kh, kw, sh, pt, pl, oh, ow = win.kh, win.kw, win.sh, win.pad_top, win.pad_left, win.out_h, win.out_w
    _, h, w, _ = x.shape
    xf = x.reshape(x.size)
    for i in range(kh):
        for j in range(kw):
            row = out[i * kw + j]
            xo_lo, xo_hi = min(ow, max(0, pl - j)), max(0, min(ow, w + pl - j))  # taps inside the image
            for yo in range(oh):
                hh = yo * sh - pt + i
                lo, hi = (xo_lo, xo_hi) if 0 <= hh < h else (0, 0)
                dst, src = np.uint64(yo * ow), np.uint64((b * h + hh) * w - pl + j)
                for t in range(np.uint64(ow)):
                    row[dst + t] = xf[src + t] if lo <= t < hi else 0.0


@njit(cache=True)
def _im2col_chunk(x, k, chunk, by_tap, win, buf):
    # im2col of the k-th chunk of `chunk` samples into buf (rows from the first; by_tap: transposed, chunk = 1);
    # returns (first sample, end, rows of the column matrix).
    rows_per_sample = win.out_h * win.out_w
    s0, s1 = k * chunk, min(x.shape[0], (k + 1) * chunk)
    for b in range(s0, s1):
        if by_tap:
            _im2col_sample_by_tap(x, b, win, buf)
        else:
            _im2col_sample(x, b, win, buf, (b - s0) * rows_per_sample)
    return s0, s1, (s1 - s0) * rows_per_sample


@njit(parallel=True, cache=True)
def conv_forward(x, w2d, bias, relu, win, chunk, by_tap, cols, out):
    """``out = im2col(x) @ w2d + bias`` (then ReLU when ``relu``), chunk by chunk.

    ``cols`` holds one small column buffer per thread (part). Each part takes chunks of ``chunk`` samples in turn:
    im2col of the chunk into its buffer (which stays in cache), one product into the chunk's output rows, then bias
    (and ReLU) on those rows."""
    rows_per_sample = win.out_h * win.out_w
    parts = cols.shape[0]
    chunks = (x.shape[0] + chunk - 1) // chunk
    for part in prange(parts):
        buf = cols[part]
        for k in range(part, chunks, parts):
            s0, _, rows = _im2col_chunk(x, k, chunk, by_tap, win, buf)
            z = out[s0 * rows_per_sample : s0 * rows_per_sample + rows]
            if by_tap:
                np.dot(buf.T, w2d, z)
            else:
                np.dot(buf[:rows], w2d, z)
            for r in range(rows):
                for j in range(w2d.shape[1]):
                    v = z[r, j] + bias[j]
                    z[r, j] = v if (not relu or v > 0 or v != v) else 0.0  # NaN stays NaN
    return out


@njit(parallel=True, cache=True)
def conv_backward(
    x, grad, y, relu, w2d, win, chunk, by_tap, cols, grad_cols, dz_buf, dw_tmp, dw_parts, db_parts, need_dx, dx
):
    """The gradients of :func:`conv_forward`: each part's share of dW and db into ``dw_parts[part]`` and
    ``db_parts[part]`` (the caller adds the parts), and dX into ``dx`` when ``need_dx``.

    Chunks as in :func:`conv_forward`, im2col rebuilt chunk by chunk instead of kept from the forward pass; dX of a
    chunk's samples is written by that part alone. With ``relu``, ``grad`` is dY and the chunk's dZ = dY * [y > 0]
    is formed in a per-part buffer; else ``grad`` is dZ."""
    rows_per_sample = win.out_h * win.out_w
    parts = cols.shape[0]
    chunks = (x.shape[0] + chunk - 1) // chunk
    for part in prange(parts):
        buf, gbuf, tmp, dwp, dbp = cols[part], grad_cols[part], dw_tmp[part], dw_parts[part], db_parts[part]
        dwp[:] = 0.0
        dbp[:] = 0.0
        for k in range(part, chunks, parts):
            s0, s1, rows = _im2col_chunk(x, k, chunk, by_tap, win, buf)
            lo = s0 * rows_per_sample
            if relu:
                dz, dy, y_chunk = dz_buf[part, :rows], grad[lo : lo + rows], y[lo : lo + rows]
                for r in range(rows):
                    for j in range(dz.shape[1]):
                        dz[r, j] = dy[r, j] if y_chunk[r, j] > 0 else 0.0
            else:
                dz = grad[lo : lo + rows]
            if by_tap:
                np.dot(buf, dz, tmp)
            else:
                np.dot(buf[:rows].T, dz, tmp)
            dwp += tmp
            for r in range(rows):
                for j in range(dz.shape[1]):
                    dbp[j] += dz[r, j]
            if need_dx:
                np.dot(dz, w2d.T, gbuf[:rows])
                for b in range(s0, s1):
                    _col2im_sample(gbuf, (b - s0) * rows_per_sample, b, win, dx)
    return dx
