"""The capture-safe product of minicnn/backend/cuda_graph.py passes row-major operands to cuBLAS's column-major gemm
(swapped, each with its transpose flag and leading dimension): checked on the CPU against NumPy, with a stand-in
cuBLAS that performs the column-major gemm it is asked for on the arrays' own memory."""

import ctypes
import sys
import types

import numpy as np
import pytest

from minicnn.backend import cuda_graph


class Device(np.ndarray):
    """A NumPy array that shows its address as CuPy arrays do (``a.data.ptr``)."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _matrix(ptr, dtype, rows, cols, ld, op):
    """The column-major rows x cols matrix stored at ptr with leading dimension ld, after op (0: N, 1: T)."""
    stored = (rows, cols) if op == 0 else (cols, rows)
    item = np.dtype(dtype).itemsize
    raw = np.ctypeslib.as_array(
        ctypes.cast(ptr, ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype))), shape=(ld * stored[1],)
    )
    view = np.lib.stride_tricks.as_strided(raw, shape=stored, strides=(item, ld * item))
    return view if op == 0 else view.T


def _gemm(dtype):
    def gemm(handle, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        scalar = ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype))
        al, be = ctypes.cast(alpha, scalar)[0], ctypes.cast(beta, scalar)[0]
        out = _matrix(c, dtype, m, n, ldc, 0)
        product = al * _matrix(a, dtype, m, k, lda, ta) @ _matrix(b, dtype, k, n, ldb, tb)
        out[...] = product if be == 0 else product + be * out  # beta 0: C is not read (cuBLAS's rule)

    return gemm


def _batched(dtype):
    def gemm(handle, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, count):
        item = np.dtype(dtype).itemsize
        for i in range(count):
            _gemm(dtype)(
                handle,
                ta,
                tb,
                m,
                n,
                k,
                alpha,
                a + i * sa * item,
                lda,
                b + i * sb * item,
                ldb,
                beta,
                c + i * sc * item,
                ldc,
            )

    return gemm


@pytest.fixture
def fake_cupy(monkeypatch):
    cublas = types.SimpleNamespace(
        CUBLAS_OP_N=0,
        CUBLAS_OP_T=1,
        setStream=lambda handle, stream: None,
        sgemm=_gemm(np.float32),
        dgemm=_gemm(np.float64),
        sgemmStridedBatched=_batched(np.float32),
        dgemmStridedBatched=_batched(np.float64),
    )
    cuda = types.SimpleNamespace(
        device=types.SimpleNamespace(get_cublas_handle=lambda: 0),
        get_current_stream=lambda: types.SimpleNamespace(ptr=0),
    )
    cupy = types.SimpleNamespace(empty=lambda shape, dtype: np.empty(shape, dtype).view(Device), cuda=cuda)
    libs = types.ModuleType("cupy_backends.cuda.libs")
    libs.cublas = cublas
    for name, module in (
        ("cupy", cupy),
        ("cupy_backends", types.ModuleType("cupy_backends")),
        ("cupy_backends.cuda", types.ModuleType("cupy_backends.cuda")),
        ("cupy_backends.cuda.libs", libs),
        ("cupy_backends.cuda.libs.cublas", cublas),
    ):
        monkeypatch.setitem(sys.modules, name, module)


def _dev(a):
    return np.ascontiguousarray(a).view(Device)


def _never(*args, **kwargs):
    raise AssertionError("fell back to the original matmul")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C @ C", "C @ F", "F @ C", "F @ F", "row of ones @ C"])
def test_gemm_equals_numpy_for_each_layout(fake_cupy, dtype, layout):
    rng = np.random.default_rng(0)
    m, k, n = (1, 37, 5) if layout.startswith("row") else (7, 5, 3)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    da = _dev(a) if layout[0] in "Cr" else _dev(a.T).T  # F: a transposed view of a C array
    db = _dev(b) if layout[-1] == "C" else _dev(b.T).T
    out = cuda_graph.matmul(da, db, original=_never)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5)
    into = np.full((m, n), np.nan, dtype).view(Device)
    assert cuda_graph.matmul(da, db, into, original=_never) is into and np.allclose(into, a @ b, rtol=1e-5)


def test_batched_gemm_of_a_transposed_stack(fake_cupy):
    # the first convolution's weight gradient on the GPU: (n, p, r) views of (n, r, p) columns @ (n, r, f)
    rng = np.random.default_rng(1)
    cols, dz = rng.standard_normal((4, 6, 5)).astype(np.float32), rng.standard_normal((4, 6, 3)).astype(np.float32)
    out = cuda_graph.matmul(_dev(cols).transpose(0, 2, 1), _dev(dz), original=_never)
    np.testing.assert_allclose(out, cols.transpose(0, 2, 1) @ dz, rtol=1e-5)


def test_other_products_go_to_the_original(fake_cupy):
    a = _dev(np.ones((4, 4), np.float32))
    called = []
    cuda_graph.matmul(a, _dev(np.ones((4, 4), np.int32)), original=lambda *x, **k: called.append("dtype"))
    cuda_graph.matmul(a[::2, ::2], a[:2, :2], original=lambda *x, **k: called.append("strided"))
    assert called == ["dtype", "strided"]
