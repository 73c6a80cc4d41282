"""The Numba backend: NumPy arrays, and thin methods that call the parallel kernels of this package."""

from __future__ import annotations

import sys

import numba
import numpy as np

from .. import numpy_ref
from ..base import Backend
from ..geometry import Window
from . import batch_norm, conv, elementwise, optimizers, pooling
from .compiling import CLOCK
from .threads import OneBlasThread, kernel_threads, start_pool


def _work(scratch, key, shape, dtype):
    """The layer's reused buffer ``scratch(key, shape, dtype)``, or a fresh one when no scratch supplier was given."""
    return np.empty(shape, dtype=dtype) if scratch is None else scratch(key, shape, dtype)


def _as_2d(a):
    return a.reshape(-1, a.shape[-1])


# Seconds per element (per multiply-add for products) of kernels on one thread, measured on the 2-core VM; with
# them a small call runs on one thread (threads.kernel_threads; docs/performance.md, "Small kernels on one
# thread"). Rough on purpose: a wrong guess costs a little speed, never a different result.
ELEMENTWISE_SECONDS = 0.2e-9
PRODUCT_SECONDS = 0.035e-9


FUSED_UPDATES = {
    "adadelta": optimizers.adadelta_step,
    "adam": optimizers.adam_step,
    "adam_amsgrad": optimizers.adam_amsgrad_step,
}  # optimizer rule -> its one-pass kernel


class NumbaBackend(Backend):
    """NumPy arrays, Numba-parallel kernels; matrix products split between Numba's threads, each calling SciPy's
    BLAS single-threaded (see :mod:`.threads`).

    It fuses the convolution (:meth:`conv2d_fused_forward`, :meth:`conv2d_fused_backward`) and the Adadelta step
    (``fused_update("adadelta")``)."""

    name = "numba"
    fuses_conv2d = True
    CHUNK_ROWS = 512  # rows of the column matrix a thread builds and multiplies at a time (kept in cache)

    def __init__(self):
        # Every matrix product of this backend runs inside a Numba parallel loop, with BLAS held to one thread
        # for the duration of the call (the BLAS libraries' own thread counts are restored afterwards).
        self._one_blas_thread = OneBlasThread()
        start_pool()  # Numba's threads, started with a bounded wait and the cores really available

    def matmul(self, a, b, out=None):
        a, b = np.ascontiguousarray(a), b if (b.flags.c_contiguous or b.flags.f_contiguous) else b.copy()
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b)) if out is None else out
        parts = numba.get_num_threads()  # read before kernel_threads: the row blocks stay the same
        with self._one_blas_thread, kernel_threads(a.shape[0] * a.shape[1] * b.shape[1] * PRODUCT_SECONDS):
            return elementwise.matmul_rows(a, b, out, parts)

    def im2col(self, x, win: Window, out=None):
        x = np.ascontiguousarray(x)
        n, _, _, c = x.shape
        if out is None:
            out = np.empty((n * win.out_h * win.out_w, win.kh * win.kw * c), dtype=x.dtype)
        with kernel_threads(out.size * ELEMENTWISE_SECONDS):
            return conv.im2col(x, win, out)

    def col2im(self, cols, x_shape, win: Window, out=None):
        dx = np.empty(x_shape, dtype=cols.dtype) if out is None else out
        with kernel_threads(cols.size * ELEMENTWISE_SECONDS):
            return conv.col2im(np.ascontiguousarray(cols), win, dx)

    def maxpool_forward(self, x, win: Window, out=None, argmax_out=None):
        x = np.ascontiguousarray(x)
        n, _, _, c = x.shape
        y = np.empty((n, win.out_h, win.out_w, c), dtype=x.dtype) if out is None else out
        argmax = np.empty(y.shape, dtype=np.int32) if argmax_out is None else argmax_out
        with kernel_threads(x.size * ELEMENTWISE_SECONDS):
            return pooling.maxpool_forward(x, win, y, argmax)

    def maxpool_backward(self, dy, argmax, x_shape, win: Window, out=None):
        dx = np.empty(x_shape, dtype=dy.dtype) if out is None else out
        kernel = pooling.maxpool_backward
        if win.sh == win.kh and win.sw == win.kw and not win.padded:
            kernel = pooling.maxpool_backward_tiled
        with kernel_threads(dx.size * ELEMENTWISE_SECONDS):
            return kernel(np.ascontiguousarray(dy), argmax, win, dx)

    def avgpool_forward(self, x, win: Window, out=None):
        x = np.ascontiguousarray(x)
        n, _, _, c = x.shape
        y = np.empty((n, win.out_h, win.out_w, c), dtype=x.dtype) if out is None else out
        with kernel_threads(x.size * ELEMENTWISE_SECONDS):
            return pooling.avgpool_forward(x, numpy_ref.avgpool_counts(np, x.shape, win, x.dtype), win, y)

    def avgpool_backward(self, dy, x_shape, win: Window, out=None):
        dx = np.empty(x_shape, dtype=dy.dtype) if out is None else out
        counts = numpy_ref.avgpool_counts(np, x_shape, win, dy.dtype)
        with kernel_threads(dx.size * ELEMENTWISE_SECONDS):
            return pooling.avgpool_backward(np.ascontiguousarray(dy), counts, win, dx)

    def bias_relu(self, z, bias):
        if not z.flags.c_contiguous:
            return super().bias_relu(z, bias)
        with kernel_threads(z.size * ELEMENTWISE_SECONDS):
            elementwise.bias_relu(_as_2d(z), bias)
        return z

    def relu_backward(self, dy, y, out=None):
        dy, y = np.ascontiguousarray(dy), np.ascontiguousarray(y)
        out = np.empty_like(dy) if out is None else out
        with kernel_threads(dy.size * ELEMENTWISE_SECONDS):
            elementwise.relu_backward(_as_2d(dy), _as_2d(y), _as_2d(out))
        return out

    def bias_gradient(self, grad_z, out):
        if grad_z.shape[0] < 4096 or not grad_z.flags.c_contiguous:
            return super().bias_gradient(grad_z, out)
        with kernel_threads(grad_z.size * ELEMENTWISE_SECONDS):
            partial = elementwise.column_sums(grad_z, np.empty((64, grad_z.shape[1]), dtype=grad_z.dtype))
        return partial.sum(axis=0, out=out)

    def weight_gradient(self, cols, grad_z, out, scratch=None):
        # A sum over rows split between the threads, each thread's block one single-threaded BLAS product.
        cols, grad_z = np.ascontiguousarray(cols), np.ascontiguousarray(grad_z)
        partial = _work(scratch, "dw_parts", (numba.get_num_threads(),) + out.shape, out.dtype)
        with self._one_blas_thread, kernel_threads(cols.size * grad_z.shape[1] * PRODUCT_SECONDS):
            elementwise.weight_gradient_parts(cols, grad_z, partial)
        return partial.sum(axis=0, out=out)

    # --- the fused convolution ------------------------------------------------------------------
    def _plan(self, n, win: Window, channels):
        """(samples per chunk, by_tap) for the fused convolution. Each thread's column buffer holds a chunk of
        about CHUNK_ROWS rows, small enough to stay in cache between im2col and the product that reads it. With
        few channels (a patch row, kw*c values, shorter than an output row) the columns are built transposed, one
        sample at a time."""
        if win.kw * channels < win.out_w:
            return 1, True
        per_sample = win.out_h * win.out_w
        return max(1, min(self.CHUNK_ROWS // per_sample, -(-n // numba.get_num_threads()))), False

    @staticmethod
    def _column_buffers(chunk, by_tap, win: Window, p, dtype, scratch):
        parts, rows = numba.get_num_threads(), chunk * win.out_h * win.out_w
        return _work(scratch, "cols", (parts, p, rows) if by_tap else (parts, rows, p), dtype)

    def conv2d_fused_forward(self, x, kernel2d, bias, win: Window, relu: bool, out=None, scratch=None):
        """``Z = im2col(x) @ kernel2d + bias``, then ``max(Z, 0)`` when ``relu``: ``numpy_ref.conv2d_forward`` in one
        call that never stores the column matrix whole (each thread builds a few samples' columns at a time).

        ``x`` is ``(N, H, W, C)``; ``kernel2d`` ``(KH*KW*C, F)``; ``bias`` ``(F,)`` or None. Returns ``Z`` of shape
        ``(N*OH*OW, F)`` (into ``out`` when given); the caller keeps ``x`` for :meth:`conv2d_fused_backward`.
        ``scratch(key, shape, dtype)``, when given, lends work buffers (the layer's own, reused across steps)."""
        x = np.ascontiguousarray(x)
        n, c = len(x), x.shape[-1]
        p, f = kernel2d.shape
        out = np.empty((n * win.out_h * win.out_w, f), dtype=x.dtype) if out is None else out
        chunk, by_tap = self._plan(n, win, c)
        cols = self._column_buffers(chunk, by_tap, win, p, x.dtype, scratch)
        bias = np.zeros(f, dtype=x.dtype) if bias is None else bias
        with self._one_blas_thread, kernel_threads(out.shape[0] * p * f * PRODUCT_SECONDS):
            conv.conv_forward(x, np.ascontiguousarray(kernel2d), bias, relu, win, chunk, by_tap, cols, out)
        return out

    def conv2d_fused_backward(
        self,
        x,
        grad,
        kernel2d,
        win: Window,
        grad_kernel,
        grad_bias,
        relu_output=None,
        input_gradient=True,
        out=None,
        scratch=None,
    ):
        """The gradients of :meth:`conv2d_fused_forward` (``numpy_ref.conv2d_backward`` in one call, the columns
        rebuilt from ``x`` a few samples at a time): ``dW = cols^T @ dZ`` into ``grad_kernel``, ``db`` (the sum of
        ``dZ`` over rows) into ``grad_bias`` unless None; returns ``dX = col2im(dZ @ kernel2d^T)`` of ``x.shape``
        (into ``out`` when given), or None when not ``input_gradient``.

        ``grad`` is ``dZ`` (``(N*OH*OW, F)``), or ``dY`` when ``relu_output`` (the forward's ReLU output ``y``) is
        given: then ``dZ = dY * [y > 0]`` is formed chunk by chunk, never stored whole."""
        x = np.ascontiguousarray(x)
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
        y = np.ascontiguousarray(relu_output) if relu else grad
        dx = (np.empty(x.shape, dtype=x.dtype) if out is None else out) if input_gradient else x
        products = 2 + bool(input_gradient)  # dW, then dX and col2im; the columns rebuilt
        with self._one_blas_thread, kernel_threads(len(grad) * p * f * products * PRODUCT_SECONDS):
            conv.conv_backward(
                x,
                np.ascontiguousarray(grad),
                y,
                relu,
                np.ascontiguousarray(kernel2d),
                win,
                chunk,
                by_tap,
                cols,
                grad_cols,
                dz_buf,
                dw_tmp,
                dw_parts,
                db_parts,
                input_gradient,
                dx,
            )
        dw_parts.sum(axis=0, out=grad_kernel)
        if grad_bias is not None:
            db_parts.sum(axis=0, out=grad_bias)
        return dx if input_gradient else None

    # --- random numbers and dropout ---------------------------------------------------------------
    def uniform(self, rng, shape, dtype, out=None):
        """The very numbers of ``rng.random(shape, dtype=float32)``, faster: PCG64 yields 64-bit outputs in one call
        (``random_raw``) and a parallel loop splits and scales them as NumPy does, keeping NumPy's rule for an odd
        count (the unused high half waits in the generator's state for the next draw); see docs/performance.md,
        "Uniform numbers". Other dtypes and generators: NumPy's own ``random``."""
        bitgen = getattr(rng, "bit_generator", None)
        if np.dtype(dtype) != np.float32 or type(bitgen) is not np.random.PCG64 or sys.byteorder != "little":
            return super().uniform(rng, shape, dtype, out)
        want = tuple(int(d) for d in np.atleast_1d(shape))
        if out is None:
            out = np.empty(want, dtype=np.float32)
        elif out.shape != want or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(
                f"uniform: out must be a C-contiguous float32 array of shape {want}, got {out.dtype} {out.shape}"
            )
        flat = out.reshape(-1)
        state = bitgen.state
        kept = bool(state["has_uint32"]) and flat.size > 0
        if kept:  # a high half kept from the last odd draw comes first
            flat[0] = np.float32(state["uinteger"] >> 8) * elementwise.UNIFORM32_STEP
            flat = flat[1:]
        raw = bitgen.random_raw((flat.size + 1) // 2)
        with kernel_threads(flat.size * ELEMENTWISE_SECONDS):
            elementwise.uniform32_from_raw(raw.view(np.uint32), flat)
        keep = flat.size % 2 == 1  # the last output's high half was not used
        if keep or kept:
            state = bitgen.state
            state["has_uint32"], state["uinteger"] = int(keep), int(raw[-1] >> np.uint64(32)) if keep else 0
            bitgen.state = state
        return out

    def dropout_mask(self, uniform, rate: float, out=None):
        uniform = np.ascontiguousarray(uniform)
        out = np.empty_like(uniform) if out is None else out
        with kernel_threads(uniform.size * ELEMENTWISE_SECONDS):
            return elementwise.dropout_mask(
                uniform, uniform.dtype.type(rate), uniform.dtype.type(1.0 / (1.0 - rate)), out
            )

    def dropout_apply(self, x, uniform, rate: float, out=None, mask_out=None):
        x, uniform = np.ascontiguousarray(x), np.ascontiguousarray(uniform)
        given = [a for a in (out, mask_out) if a is not None]
        if x.dtype != uniform.dtype or x.shape != uniform.shape or not all(a.flags.c_contiguous for a in given):
            return super().dropout_apply(x, uniform, rate, out, mask_out)
        y = np.empty_like(x) if out is None else out
        mask = np.empty_like(uniform) if mask_out is None else mask_out
        t = uniform.dtype.type
        # flat views: one compiled specialisation serves every shape (a first run compiles it once, not per rank)
        with kernel_threads(x.size * ELEMENTWISE_SECONDS):
            elementwise.dropout_apply(
                x.reshape(-1), uniform.reshape(-1), t(rate), t(1.0 / (1.0 - rate)), y.reshape(-1), mask.reshape(-1)
            )
        return y, mask

    # --- batch normalization (kernels in .batch_norm; out buffers C-contiguous) ---------------------
    def batchnorm_forward_training(self, x2d, gamma, beta, eps, out=None, xhat_out=None):
        x2d = np.ascontiguousarray(x2d)
        m, c = x2d.shape
        parts = np.empty((batch_norm.PARTS, c), dtype=x2d.dtype)
        with kernel_threads(x2d.size * ELEMENTWISE_SECONDS):
            mean = elementwise.column_sums(x2d, parts).sum(axis=0) / m
            var = batch_norm.squared_deviation_sums(x2d, mean, parts).sum(axis=0) / m
        y, xhat, inv_std = self.batchnorm_forward_inference(x2d, mean, var, gamma, beta, eps, out, xhat_out)
        return y, xhat, mean, var, inv_std

    def batchnorm_forward_inference(self, x2d, mean, var, gamma, beta, eps, out=None, xhat_out=None):
        x2d = np.ascontiguousarray(x2d)
        inv_std = numpy_ref.batchnorm_inverse_std(np, var, eps)
        gamma, beta = numpy_ref.batchnorm_affine(np, gamma, beta, x2d.shape[1], x2d.dtype)
        y = np.empty_like(x2d) if out is None else out
        xhat = np.empty_like(x2d) if xhat_out is None else xhat_out
        with kernel_threads(x2d.size * ELEMENTWISE_SECONDS):
            batch_norm.normalize(x2d, mean, inv_std, gamma, beta, y, xhat)
        return y, xhat, inv_std

    def batchnorm_backward(self, dy2d, xhat, gamma, inv_std, training=True, out=None, dgamma_out=None, dbeta_out=None):
        dy2d, xhat = np.ascontiguousarray(dy2d), np.ascontiguousarray(xhat)
        m, c = dy2d.shape
        with kernel_threads(dy2d.size * ELEMENTWISE_SECONDS):
            parts = batch_norm.gradient_sums(dy2d, xhat, np.empty((2, batch_norm.PARTS, c), dtype=dy2d.dtype))
        dbeta = parts[0].sum(axis=0, out=dbeta_out)
        dgamma = parts[1].sum(axis=0, out=dgamma_out)
        scale = inv_std if gamma is None else gamma * inv_std
        dx = np.empty_like(dy2d) if out is None else out
        with kernel_threads(dy2d.size * ELEMENTWISE_SECONDS):
            batch_norm.input_gradient(dy2d, xhat, dbeta / m, dgamma / m, scale, bool(training), dx)
        return dx, dgamma, dbeta

    # --- compiling: Numba compiles each kernel at its first call, then loads it from the disk cache ------------
    def compile_seconds(self) -> float:
        return CLOCK.seconds

    def on_compile_start(self, notice) -> None:
        CLOCK.notice = notice

    # --- optimizers -------------------------------------------------------------------------------
    def fused_update(self, rule: str):
        """``optimizers.adadelta_step`` for ``"adadelta"``, ``adam_step`` for ``"adam"`` (AdamW too),
        ``adam_amsgrad_step`` for ``"adam_amsgrad"`` (they ignore ``gate``: the caller tests it on the host), else
        None."""
        return FUSED_UPDATES.get(rule)
