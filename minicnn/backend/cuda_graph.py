"""Capturing a CuPy training step as one CUDA graph, and replaying it (used by :mod:`minicnn.graph_step`).

A step of the tutorial is ~60 kernel launches; at batch 128 the GPU finishes each faster than Python issues the
next. Captured once into a graph (``cupy.cuda.Stream.begin_capture`` / ``end_capture``), the whole step is then one
``graph.launch()``. Three things make a captured step replay correctly:

- memory: every array the step allocates while it is captured comes from a memory pool of its own, kept as long
  as the graph (the default pool would hand those addresses to other arrays after the capture);
- products: CuPy refuses cuBLAS calls during capture (``cupy.matmul`` raises NotImplementedError), so while
  capturing, ``cupy.matmul`` of 2-D and batched 3-D float arrays calls cuBLAS's gemm directly (:func:`matmul`),
  the same routine with the same arguments;
- host values: only what the step reads on the device changes between replays (the optimizer's numbers are
  checked by the caller, the NaN guard counts steps on the device).

Needs CuPy and a GPU; nothing here runs on a CPU-only machine (``benchmarks/gpu_check.py`` checks it).
"""

from __future__ import annotations

import contextlib

import numpy as np


def _operand(x):
    """``(op, ld, batch stride)`` of a row-major matrix (or stack of them) as cuBLAS's column-major gemm reads it,
    or None when its layout is neither C- nor F-ordered per matrix."""
    from cupy_backends.cuda.libs import cublas

    item = x.itemsize
    rows, cols = x.shape[-2:]
    s_row, s_col = x.strides[-2] // item, x.strides[-1] // item
    batch = x.strides[0] // item if x.ndim == 3 else 0
    if s_col == 1 and s_row >= max(1, cols):  # C-ordered rows: column-major view is x^T, no transpose
        return cublas.CUBLAS_OP_N, s_row, batch
    if s_row == 1 and s_col >= max(1, rows):  # F-ordered: column-major view is x itself
        return cublas.CUBLAS_OP_T, s_col, batch
    return None


def matmul(a, b, out=None, *, original):
    """``a @ b`` for 2-D (or equally batched 3-D) float32/float64 CuPy arrays through cuBLAS's gemm directly;
    anything else goes to ``original`` (CuPy's own ``matmul``). Row-major ``C = A @ B`` is column-major
    ``C^T = B^T @ A^T``: the operands are passed swapped."""
    import cupy
    from cupy_backends.cuda.libs import cublas

    if (
        a.ndim != b.ndim
        or a.ndim not in (2, 3)
        or a.dtype != b.dtype
        or a.dtype not in (np.float32, np.float64)
        or (a.ndim == 3 and a.shape[0] != b.shape[0])
        or a.shape[-1] != b.shape[-2]
    ):
        return original(a, b, out=out)
    op_a, op_b = _operand(a), _operand(b)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    shape = a.shape[:-2] + (m, n)
    if out is None:
        out = cupy.empty(shape, dtype=a.dtype)
    if op_a is None or op_b is None or out.shape != shape or not out.flags.c_contiguous or out.dtype != a.dtype:
        return original(a, b, out=out)
    one, zero = np.ones((), a.dtype), np.zeros((), a.dtype)  # host scalars: cuBLAS reads them at the call
    handle = cupy.cuda.device.get_cublas_handle()
    cublas.setStream(handle, cupy.cuda.get_current_stream().ptr)  # the capturing stream
    single = a.dtype == np.float32
    if a.ndim == 2:
        gemm = cublas.sgemm if single else cublas.dgemm
        gemm(
            handle,
            op_b[0],
            op_a[0],
            n,
            m,
            k,
            one.ctypes.data,
            b.data.ptr,
            op_b[1],
            a.data.ptr,
            op_a[1],
            zero.ctypes.data,
            out.data.ptr,
            n,
        )
    else:
        gemm = cublas.sgemmStridedBatched if single else cublas.dgemmStridedBatched
        gemm(
            handle,
            op_b[0],
            op_a[0],
            n,
            m,
            k,
            one.ctypes.data,
            b.data.ptr,
            op_b[1],
            op_b[2],
            a.data.ptr,
            op_a[1],
            op_a[2],
            zero.ctypes.data,
            out.data.ptr,
            n,
            m * n,
            a.shape[0],
        )
    return out


@contextlib.contextmanager
def products_through_gemm():
    """While capturing: ``cupy.matmul`` calls cuBLAS directly (see :func:`matmul`)."""
    import cupy

    original = cupy.matmul
    cupy.matmul = lambda a, b, out=None, **kw: (
        original(a, b, out=out, **kw) if kw else matmul(a, b, out, original=original)
    )
    try:
        yield
    finally:
        cupy.matmul = original


class CupyGraphCapture:
    """``capture(fn)``: records ``fn()`` (one training step on static buffers) as a CUDA graph, launches it once,
    and returns ``fn``'s outputs (device arrays the graph writes at every launch); ``replay()`` launches it again.
    Both run on the current stream, after whatever was queued there (the copies into the static inputs)."""

    def __init__(self):
        import cupy

        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.graph = None
        self.pool = None

    def capture(self, fn):
        import cupy

        cupy.cuda.device.get_cublas_handle()  # created now: not while capturing
        cupy.cuda.get_current_stream().synchronize()  # the static inputs are written
        pool = cupy.cuda.MemoryPool()
        mode = getattr(cupy.cuda.runtime, "streamCaptureModeRelaxed", 2)
        with self.stream, cupy.cuda.using_allocator(pool.malloc), products_through_gemm():
            self.stream.begin_capture(mode)
            try:
                outputs = fn()
            except BaseException:
                with contextlib.suppress(Exception):
                    self.stream.end_capture()
                raise
            graph = self.stream.end_capture()
        self.graph, self.pool = graph, pool
        self.replay()
        return outputs

    def replay(self):
        import cupy

        self.graph.launch(stream=cupy.cuda.get_current_stream())
