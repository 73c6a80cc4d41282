"""Numba kernels for the CPU: the same results as :mod:`numpy_ref`, in parallel loops.

Each kernel is a plain loop nest, parallel (``prange``) over an outer axis whose iterations write disjoint
outputs, so no two threads ever write the same element:

- ``im2col``: over samples, each writes its own rows of the column matrix;
- ``col2im`` in GATHER form: over input rows, each row sums the column entries that were read from it
  (no scatter, hence no write race and no ``np.add.at``);
- max-pool forward: over ``(n, oh)``; backward in gather form too: over input rows ``(n, h)``;
- fused bias + ReLU and its backward: over rows.

The convolution is fused (``conv2d_forward``/``conv2d_backward``): each thread takes a few samples at a time
(about ``CHUNK_ROWS`` rows of the column matrix), builds their im2col columns in a small buffer of its own that
stays in cache, multiplies them at once, and adds the bias and the ReLU (backward: forms dZ = dY * [y > 0], adds
its share of dW and db, and gathers dX of those samples). The full column matrix (26 MB for the tutorial's second
convolution at batch 128) is never stored; the backward pass rebuilds it chunk by chunk from the input. For
inputs with few channels (the first layer's 1) the columns of a sample are built transposed, one row per tap, so
that the copies run along output rows (tutorial's first convolution: 1.8 -> 1.1 ms forward, 2.4 -> 1.5 backward).

Kernels are compiled on first use and cached on disk (``cache=True``), once per dtype.

Inner loops index views with the loop variable itself (``run[t]`` for ``t in range(n)``), never ``a[offset + t]``:
Numba cannot tell that ``offset + t`` is never negative, adds a wraparound test to every such access, and LLVM then
leaves the loop scalar (im2col and col2im of the tutorial's second convolution ran 2-2.5x slower that way). For
runs too short to pay for a view (~20 ns to make one), unsigned indices do the same: Numba tests only signed ones.
Measure such changes inside the module's own functions, called with run-time arguments: a test kernel called with
constant shapes gets them folded in by LLVM and can look faster than the real one will be.

Threads, and why every matrix product runs inside Numba (measured on a 2-core machine, tutorial step at batch
128): there is ONE pool of threads, Numba's. Each matrix product is split by rows between Numba's threads, and
each thread calls BLAS (SciPy's, which ``np.dot`` uses inside Numba) with BLAS held to one thread for the call
(threadpoolctl). With BLAS's own threads in play, they kept spinning after each product while Numba's
threads needed the same cores: a step took 63 ms that way, 28 ms with one pool. With BLAS out of the way, the
OpenMP threading layer is the default (unless ``NUMBA_THREADING_LAYER`` or ``NUMBA_THREADING_LAYER_PRIORITY``
is set): starting a parallel loop costs ~7 us with OpenMP against ~150 us with ``workqueue``, which waits on
condition variables, and a step makes ~30 of them (a step took 24 ms against 29 ms). GNU OpenMP does not
survive ``fork()``: start worker processes with ``spawn``.
"""

from __future__ import annotations

import os
import sys
import threading

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that np.dot inside Numba calls; imported before threadpoolctl looks)
from numba import njit, prange
from threadpoolctl import ThreadpoolController

if "NUMBA_THREADING_LAYER" not in os.environ and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

from . import Backend, _lend
from .geometry import Window


@njit(cache=True)
def _im2col_sample(x, b, kh, kw, sh, sw, pt, pl, oh, ow, out, row0):
    # Sample b's oh*ow rows of the column matrix, written from row row0 of out. For a kernel row i fully inside
    # the image, its kw*c values are contiguous in x and in the output row: one run of copies; padding is zeros.
    # The runs are copied through views (out_run[t], t from range): indexing with `dst + t` instead, Numba cannot
    # tell that the index is never negative and tests each access for wraparound, which keeps LLVM from
    # vectorising the copy (measured: im2col of 8 samples of the tutorial's second convolution 127 -> ~51 us).
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
                out_run = out[r, dst:dst + run]
                if hh < 0 or hh >= h:
                    for t in range(run):
                        out_run[t] = 0.0
                elif inside_w:
                    src = ((b * h + hh) * w + w0) * c
                    x_run = xf[src:src + run]
                    for t in range(run):
                        out_run[t] = x_run[t]
                else:                                  # partly in the left or right padding: tap by tap
                    for j in range(kw):
                        out_tap = out_run[j * c:(j + 1) * c]
                        if 0 <= w0 + j < w:
                            x_tap = x[b, hh, w0 + j]
                            for ch in range(c):
                                out_tap[ch] = x_tap[ch]
                        else:
                            for ch in range(c):
                                out_tap[ch] = 0.0


@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, sh, sw, pt, pl, oh, ow, out):
    for b in prange(x.shape[0]):
        _im2col_sample(x, b, kh, kw, sh, sw, pt, pl, oh, ow, out, b * oh * ow)
    return out


@njit(cache=True, inline="always")
def _taps_inside(start, k, size):
    # Along one axis: the taps [lo, hi) of a k-wide window starting at `start` that fall inside [0, size).
    return max(0, -start), min(k, size - start)


@njit(cache=True, inline="always")
def _window_reading(p, pad, tap, stride, out_size):
    # Along one axis: the window (output index) whose tap `tap` reads input position p, or -1 when none does.
    t = p + pad - tap
    if t < 0 or t % stride != 0:
        return -1
    o = t // stride
    return o if o < out_size else -1


@njit(cache=True)
def _col2im_row(cols, row0, b, hh, kh, kw, sh, sw, pt, pl, oh, ow, dx):
    # Gather form, a row at a time: input row hh of sample b sums the column entries read from it (sample b's
    # rows of cols start at row0). Kernel row i of window (y, xo) read the pixels w0 .. w0 + kw - 1 of this row
    # (those inside it): a run of values contiguous in the columns and in dx, added as one run (through views, as
    # in _im2col_sample). Tutorial's second convolution, 8 samples: 95 us pixel by pixel, 57 us by runs.
    _, h, w, c = dx.shape
    row = dx[b, hh].reshape(w * c)
    for t in range(w * c):
        row[t] = 0.0
    for i in range(kh):
        y = _window_reading(hh, pt, i, sh, oh)
        if y < 0:
            continue
        for xo in range(ow - 1, -1, -1):   # windows right to left: each pixel sums its taps j in increasing order
            w0 = xo * sw - pl
            j_lo, j_hi = _taps_inside(w0, kw, w)
            if j_lo >= j_hi:
                continue
            src = cols[row0 + y * ow + xo, (i * kw + j_lo) * c:(i * kw + j_hi) * c]
            dst = row[(w0 + j_lo) * c:(w0 + j_hi) * c]
            for t in range(src.size):
                dst[t] += src[t]


@njit(cache=True)
def _col2im_sample(cols, row0, b, kh, kw, sh, sw, pt, pl, oh, ow, dx):
    for hh in range(dx.shape[1]):
        _col2im_row(cols, row0, b, hh, kh, kw, sh, sw, pt, pl, oh, ow, dx)


@njit(parallel=True, cache=True)
def _col2im(cols, kh, kw, sh, sw, pt, pl, oh, ow, dx):
    n, h = dx.shape[0], dx.shape[1]
    for row in prange(n * h):
        b, hh = row // h, row % h
        _col2im_row(cols, b * oh * ow, b, hh, kh, kw, sh, sw, pt, pl, oh, ow, dx)
    return dx


@njit(cache=True)
def _im2col_sample_by_tap(x, b, kh, kw, sh, sw, pt, pl, oh, ow, out):
    # Sample b's column matrix TRANSPOSED: out[(i, j, c), (oh, ow)], one row per tap holding that tap's value at
    # every output pixel. For inputs with few channels (the tutorial's first layer: 1) the copies then run along
    # an output row (24 values) instead of along a patch row (5 values): im2col twice as fast there.
    _, h, w, c = x.shape
    if c == 1 and sw == 1:
        _im2col_sample_by_tap_one_channel(x, b, kh, kw, sh, pt, pl, oh, ow, out)
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
def _im2col_sample_by_tap_one_channel(x, b, kh, kw, sh, pt, pl, oh, ow, out):
    # _im2col_sample_by_tap for one channel and a horizontal stride of 1 (the usual first layer): the pixels a tap
    # reads along an output row are contiguous in x, copied as one run. The runs are short (24 values in the
    # tutorial), too short to pay for a view each (see _im2col_sample), so the indices are unsigned: Numba adds
    # no wraparound test to those. 7.4 -> ~3.5 us a sample for the tutorial's first convolution.
    _, h, w, _ = x.shape
    xf = x.reshape(x.size)
    for i in range(kh):
        for j in range(kw):
            row = out[i * kw + j]
            xo_lo, xo_hi = min(ow, max(0, pl - j)), max(0, min(ow, w + pl - j))   # taps inside the image
            for yo in range(oh):
                hh = yo * sh - pt + i
                lo, hi = (xo_lo, xo_hi) if 0 <= hh < h else (0, 0)
                dst, src = np.uint64(yo * ow), np.uint64((b * h + hh) * w - pl + j)
                for t in range(np.uint64(ow)):
                    row[dst + t] = xf[src + t] if lo <= t < hi else 0.0


@njit(cache=True)
def _im2col_chunk(x, k, chunk, by_tap, kh, kw, sh, sw, pt, pl, oh, ow, buf):
    # im2col of the k-th chunk of `chunk` samples into buf (rows from the first; by_tap: transposed, chunk = 1);
    # returns (first sample, end, rows of the column matrix).
    s0, s1 = k * chunk, min(x.shape[0], (k + 1) * chunk)
    for b in range(s0, s1):
        if by_tap:
            _im2col_sample_by_tap(x, b, kh, kw, sh, sw, pt, pl, oh, ow, buf)
        else:
            _im2col_sample(x, b, kh, kw, sh, sw, pt, pl, oh, ow, buf, (b - s0) * oh * ow)
    return s0, s1, (s1 - s0) * oh * ow


@njit(parallel=True, cache=True)
def _conv_forward(x, w2d, bias, relu, kh, kw, sh, sw, pt, pl, oh, ow, chunk, by_tap, cols, out):
    # cols holds one small column buffer per thread (part). Each part takes chunks of samples in turn: im2col of
    # the chunk into its buffer (which stays in cache), one product into the chunk's output rows, then bias (and
    # ReLU) on those rows.
    parts = cols.shape[0]
    chunks = (x.shape[0] + chunk - 1) // chunk
    for part in prange(parts):
        buf = cols[part]
        for k in range(part, chunks, parts):
            s0, _, rows = _im2col_chunk(x, k, chunk, by_tap, kh, kw, sh, sw, pt, pl, oh, ow, buf)
            z = out[s0 * oh * ow:s0 * oh * ow + rows]
            if by_tap:
                np.dot(buf.T, w2d, z)
            else:
                np.dot(buf[:rows], w2d, z)
            for r in range(rows):
                for j in range(w2d.shape[1]):
                    v = z[r, j] + bias[j]
                    z[r, j] = v if (not relu or v > 0 or v != v) else 0.0   # NaN stays NaN
    return out


@njit(parallel=True, cache=True)
def _conv_backward(x, grad, y, relu, w2d, kh, kw, sh, sw, pt, pl, oh, ow, chunk, by_tap, cols, grad_cols, dz_buf,
                   dw_tmp, dw_parts, db_parts, need_dx, dx):
    # Chunks as in _conv_forward, im2col rebuilt chunk by chunk instead of kept from the forward pass. Each part
    # sums its own dW and db (the caller adds the parts); dX of a chunk's samples is written by that part alone.
    # With relu, grad is dY and the chunk's dZ = dY * [y > 0] is formed in a per-part buffer; else grad is dZ.
    parts = cols.shape[0]
    chunks = (x.shape[0] + chunk - 1) // chunk
    for part in prange(parts):
        buf, gbuf, tmp, dwp, dbp = cols[part], grad_cols[part], dw_tmp[part], dw_parts[part], db_parts[part]
        dwp[:] = 0.0
        dbp[:] = 0.0
        for k in range(part, chunks, parts):
            s0, s1, rows = _im2col_chunk(x, k, chunk, by_tap, kh, kw, sh, sw, pt, pl, oh, ow, buf)
            lo = s0 * oh * ow
            if relu:
                dz, dy, y_chunk = dz_buf[part, :rows], grad[lo:lo + rows], y[lo:lo + rows]
                for r in range(rows):
                    for j in range(dz.shape[1]):
                        dz[r, j] = dy[r, j] if y_chunk[r, j] > 0 else 0.0
            else:
                dz = grad[lo:lo + rows]
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
                    _col2im_sample(gbuf, (b - s0) * oh * ow, b, kh, kw, sh, sw, pt, pl, oh, ow, dx)
    return dx


@njit(parallel=True, cache=True)
def _maxpool_forward(x, kh, kw, sh, sw, pt, pl, y, argmax):
    # The window's valid taps are computed once (no test per tap); the channel loop is innermost and contiguous.
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for b in prange(n):
        for yo in range(oh):
            h0 = yo * sh - pt
            i_lo, i_hi = _taps_inside(h0, kh, h)
            for xo in range(ow):
                w0 = xo * sw - pl
                j_lo, j_hi = _taps_inside(w0, kw, w)
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
                yo = _window_reading(hh, pt, i, sh, oh)
                if yo < 0:
                    continue
                for j in range(kw):
                    xo = _window_reading(ww, pl, j, sw, ow)
                    if xo < 0:
                        continue
                    k = i * kw + j
                    for ch in range(c):
                        if argmax[b, yo, xo, ch] == k:
                            dx[b, hh, ww, ch] += dy[b, yo, xo, ch]
    return dx


@njit(parallel=True, cache=True)
def _maxpool_backward_tiled(dy, argmax, kh, kw, dx):
    # Windows that tile the input (stride = window, no padding): each input pixel lies in at most one window, so
    # each window writes its own pixels: dy at its winner, zero elsewhere (pixels left over at the edges: zero).
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


@njit(cache=True, inline="always")
def _row_block(part, parts, rows):
    # The rows [lo, hi) of block `part` when `rows` rows are split into `parts` nearly equal blocks.
    step = (rows + parts - 1) // parts
    return min(rows, part * step), min(rows, (part + 1) * step)


@njit(parallel=True, cache=True)
def _column_sums(a, partial):
    # Sum over rows, in parallel: each of the partial.shape[0] blocks of rows sums into its own row of `partial`.
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
def _matmul_rows(a, b, out, parts):
    # a @ b, each of `parts` threads multiplying its own block of rows of a (BLAS runs single-threaded here).
    for part in prange(parts):
        lo, hi = _row_block(part, parts, a.shape[0])
        if lo < hi:
            np.dot(a[lo:hi], b, out[lo:hi])
    return out


@njit(parallel=True, cache=True)
def _weight_gradient_parts(a, dz, partial):
    # a^T @ dz as a sum over blocks of rows: each thread multiplies its block into its own partial result.
    parts = partial.shape[0]
    for part in prange(parts):
        lo, hi = _row_block(part, parts, a.shape[0])
        if lo < hi:
            np.dot(a[lo:hi].T, dz[lo:hi], partial[part])
        else:
            partial[part][:] = 0.0
    return partial


_UNIFORM32_STEP = np.float32(2.0 ** -24)   # NumPy's float32 uniform from a 32-bit draw u: (u >> 8) * 2^-24


@njit(parallel=True, cache=True)
def _uniform32_from_raw(halves, out):
    # NumPy's float32 uniforms from PCG64's 64-bit outputs seen as 32-bit halves (low half first: a little-endian
    # view), each exact in float32. out takes the first out.size halves.
    for k in prange(out.size):
        out[k] = np.float32(np.int32(halves[k] >> np.uint32(8))) * _UNIFORM32_STEP


@njit(cache=True, inline="always")
def _keep(u, rate, scale):
    # Inverted dropout's multiplier for one uniform u: kept (u >= rate) and scaled by 1 / (1 - rate), or dropped.
    return scale if u >= rate else 0.0


@njit(parallel=True, cache=True)
def _dropout_mask(uniform, rate, scale, out):
    flat_u, flat_o = uniform.reshape(uniform.size), out.reshape(out.size)
    for i in prange(flat_u.size):
        flat_o[i] = _keep(flat_u[i], rate, scale)
    return out


@njit(parallel=True, cache=True)
def _dropout_apply(x, uniform, rate, scale, y, mask):
    # dropout_mask and x * mask in one pass (the same two roundings as the reference: none, then one product).
    flat_x, flat_u = x.reshape(x.size), uniform.reshape(uniform.size)
    flat_y, flat_m = y.reshape(y.size), mask.reshape(mask.size)   # views (ravel may copy in a parallel function)
    for i in prange(flat_u.size):
        m = _keep(flat_u[i], rate, scale)
        flat_m[i] = m
        flat_y[i] = flat_x[i] * m
    return y, mask


@njit(parallel=True, cache=True)
def _adadelta(param, grad, accumulated_grad, accumulated_delta, learning_rate, rho, one_minus_rho, epsilon):
    # numpy_ref.adadelta_update in one pass, the same operations in the same order for each element.
    for i in prange(param.size):
        g = grad[i]
        a = accumulated_grad[i] * rho + one_minus_rho * (g * g)
        accumulated_grad[i] = a
        delta = np.sqrt(accumulated_delta[i] + epsilon) / np.sqrt(a + epsilon) * g
        accumulated_delta[i] = accumulated_delta[i] * rho + one_minus_rho * (delta * delta)
        param[i] -= delta * learning_rate


def _work(scratch, key, shape, dtype):
    """The layer's reused buffer ``key`` (see Backend.conv2d_forward's ``scratch``), or a fresh one without it."""
    buf = _lend(scratch, key, shape, dtype)
    return np.empty(shape, dtype=dtype) if buf is None else buf


def _as_2d(a):
    return a.reshape(-1, a.shape[-1])


class _OneBlasThread:
    """``with`` it, every BLAS library loaded in the process runs single-threaded; when the last user leaves (kernels
    may run from several Python threads at once), each library gets back the thread count it had. threadpoolctl
    finds the libraries once; its own ``limit()`` context rescans them at every use (~30 us, 0.4 ms a step)."""

    def __init__(self):
        self._libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        self._saved = []
        self._users = 0
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            if self._users == 0:
                self._saved = [lib.get_num_threads() for lib in self._libraries]
                for lib in self._libraries:
                    lib.set_num_threads(1)
            self._users += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for lib, threads in zip(self._libraries, self._saved):
                    lib.set_num_threads(threads)
        return False


class NumbaBackend(Backend):
    """NumPy arrays, Numba-parallel kernels; matrix products split between Numba's threads, each calling SciPy's
    BLAS single-threaded."""

    name = "numba"

    def __init__(self):
        # Every matrix product of this backend runs inside a Numba parallel loop, with BLAS held to one thread
        # for the duration of the call (the BLAS libraries' own thread counts are restored afterwards).
        self._one_blas_thread = _OneBlasThread()

    def matmul(self, a, b, out=None):
        a, b = np.ascontiguousarray(a), b if (b.flags.c_contiguous or b.flags.f_contiguous) else b.copy()
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b)) if out is None else out
        with self._one_blas_thread:
            return _matmul_rows(a, b, out, numba.get_num_threads())

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
        if win.sh == win.kh and win.sw == win.kw and not win.padded:
            return _maxpool_backward_tiled(np.ascontiguousarray(dy), argmax, win.kh, win.kw, dx)
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

    CHUNK_ROWS = 512

    def _plan(self, n, win: Window, channels):
        """(samples per chunk, by_tap) for the fused convolution. Each thread's column buffer holds a chunk of
        about CHUNK_ROWS rows, small enough to stay in cache between im2col and the product that reads it. With
        few channels (a patch row, kw*c values, shorter than an output row) the columns are built transposed, one
        sample at a time (``_im2col_sample_by_tap``)."""
        if win.kw * channels < win.out_w:
            return 1, True
        per_sample = win.out_h * win.out_w
        return max(1, min(self.CHUNK_ROWS // per_sample, -(-n // numba.get_num_threads()))), False

    @staticmethod
    def _column_buffers(chunk, by_tap, win: Window, p, dtype, scratch):
        parts, rows = numba.get_num_threads(), chunk * win.out_h * win.out_w
        return _work(scratch, "cols", (parts, p, rows) if by_tap else (parts, rows, p), dtype)

    def conv2d_forward(self, x, kernel2d, bias, win: Window, relu: bool, out=None, scratch=None):
        # Fused: im2col, the product, bias and ReLU chunk by chunk; the columns are never stored whole, so the
        # backward pass rebuilds them from x (kept as `saved`).
        x = np.ascontiguousarray(x)
        n, c = len(x), x.shape[-1]
        p, f = kernel2d.shape
        out = np.empty((n * win.out_h * win.out_w, f), dtype=x.dtype) if out is None else out
        chunk, by_tap = self._plan(n, win, c)
        cols = self._column_buffers(chunk, by_tap, win, p, x.dtype, scratch)
        bias = np.zeros(f, dtype=x.dtype) if bias is None else bias
        with self._one_blas_thread:
            _conv_forward(x, np.ascontiguousarray(kernel2d), bias, relu, win.kh, win.kw, win.sh, win.sw, win.pad_top,
                          win.pad_left, win.out_h, win.out_w, chunk, by_tap, cols, out)
        return out, x

    def conv2d_backward(self, saved, grad_z, kernel2d, x_shape, win: Window, grad_kernel, grad_bias,
                        input_gradient=True, out=None, scratch=None, relu_output=None):
        x = saved
        n, c = len(x), x.shape[-1]
        p, f = kernel2d.shape
        chunk, by_tap = self._plan(n, win, c)
        cols = self._column_buffers(chunk, by_tap, win, p, x.dtype, scratch)
        parts, rows = cols.shape[0], chunk * win.out_h * win.out_w
        grad_cols = _work(scratch, "grad_cols", (parts, rows, p), x.dtype)
        dw_tmp = _work(scratch, "dw_tmp", (parts, p, f), x.dtype)
        dw_parts = _work(scratch, "dw_parts", (parts, p, f), x.dtype)
        db_parts = _work(scratch, "db_parts", (parts, f), x.dtype)
        relu = relu_output is not None
        dz_buf = _work(scratch, "dz", (parts, rows if relu else 0, f), x.dtype)
        y = np.ascontiguousarray(relu_output) if relu else grad_z
        dx = (np.empty(x_shape, dtype=x.dtype) if out is None else out) if input_gradient else x
        with self._one_blas_thread:
            _conv_backward(x, np.ascontiguousarray(grad_z), y, relu, np.ascontiguousarray(kernel2d), win.kh, win.kw,
                           win.sh, win.sw, win.pad_top, win.pad_left, win.out_h, win.out_w, chunk, by_tap, cols,
                           grad_cols, dz_buf, dw_tmp, dw_parts, db_parts, input_gradient, dx)
        dw_parts.sum(axis=0, out=grad_kernel)
        if grad_bias is not None:
            db_parts.sum(axis=0, out=grad_bias)
        return dx if input_gradient else None

    def weight_gradient(self, cols, grad_z, out, scratch=None):
        # A sum over rows split between the threads, each thread's block one single-threaded BLAS product.
        cols, grad_z = np.ascontiguousarray(cols), np.ascontiguousarray(grad_z)
        partial = _work(scratch, "dw_parts", (numba.get_num_threads(),) + out.shape, out.dtype)
        with self._one_blas_thread:
            _weight_gradient_parts(cols, grad_z, partial)
        return partial.sum(axis=0, out=out)

    def uniform(self, rng, shape, dtype, out=None):
        """The very numbers of ``rng.random(shape, dtype=float32)``, 2x faster: NumPy spends ~2.7 ns a float32
        calling its bit generator for each 32-bit half; here PCG64 yields 64-bit outputs in one call
        (``random_raw``) and a parallel loop splits and scales them as NumPy does, keeping NumPy's rule for an odd
        count (the unused high half waits in the generator's state for the next draw). Other dtypes and
        generators: NumPy's own ``random``."""
        bitgen = getattr(rng, "bit_generator", None)
        if np.dtype(dtype) != np.float32 or type(bitgen) is not np.random.PCG64 or sys.byteorder != "little":
            return super().uniform(rng, shape, dtype, out)
        want = tuple(int(d) for d in np.atleast_1d(shape))
        if out is None:
            out = np.empty(want, dtype=np.float32)
        elif out.shape != want or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"uniform: out must be a C-contiguous float32 array of shape {want}, got {out.dtype} "
                             f"{out.shape}")
        flat = out.reshape(-1)
        state = bitgen.state
        kept = bool(state["has_uint32"]) and flat.size > 0
        if kept:                                           # a high half kept from the last odd draw comes first
            flat[0] = np.float32(state["uinteger"] >> 8) * _UNIFORM32_STEP
            flat = flat[1:]
        raw = bitgen.random_raw((flat.size + 1) // 2)
        _uniform32_from_raw(raw.view(np.uint32), flat)
        keep = flat.size % 2 == 1                          # the last output's high half was not used
        if keep or kept:
            state = bitgen.state
            state["has_uint32"], state["uinteger"] = int(keep), int(raw[-1] >> np.uint64(32)) if keep else 0
            bitgen.state = state
        return out

    def dropout_mask(self, uniform, rate: float, out=None):
        uniform = np.ascontiguousarray(uniform)
        out = np.empty_like(uniform) if out is None else out
        return _dropout_mask(uniform, uniform.dtype.type(rate), uniform.dtype.type(1.0 / (1.0 - rate)), out)

    def dropout_apply(self, x, uniform, rate: float, out=None, mask_out=None):
        x, uniform = np.ascontiguousarray(x), np.ascontiguousarray(uniform)
        given = [a for a in (out, mask_out) if a is not None]
        if x.dtype != uniform.dtype or x.shape != uniform.shape or not all(a.flags.c_contiguous for a in given):
            return super().dropout_apply(x, uniform, rate, out, mask_out)
        y = np.empty_like(x) if out is None else out
        mask = np.empty_like(uniform) if mask_out is None else mask_out
        t = uniform.dtype.type
        return _dropout_apply(x, uniform, t(rate), t(1.0 / (1.0 - rate)), y, mask)

    def _adadelta_step(self, param, grad, accumulated_grad, accumulated_delta, learning_rate, rho, epsilon):
        arrays = (param, grad, accumulated_grad, accumulated_delta)
        if not all(a.flags.c_contiguous for a in arrays):
            return super()._adadelta_step(*arrays, learning_rate, rho, epsilon)
        t = param.dtype.type
        _adadelta(*(a.reshape(-1) for a in arrays), t(learning_rate), t(rho), t(1 - rho), t(epsilon))
