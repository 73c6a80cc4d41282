"""Every fast backend's kernels against the plain NumPy reference, on many shapes.

Exact equality where the kernel does the same arithmetic (im2col, max-pool forward, ReLU, dropout);
sums in another order (col2im on the GPU, overlapping max-pool backward) agree to a few units of the last place:
float64 rtol 1e-12, float32 rtol 1e-5 (at most 25 terms summed, each rounding 6e-8 relative).
"""

import numpy as np
import pytest

from minicnn.backend import get_backend, make_window, numpy_ref
from minicnn.optimizers import Adadelta


def _backend_or_skip(name):
    try:
        return get_backend(name)
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"backend {name!r} unavailable here: {err}")


@pytest.fixture(params=["numba", "cupy"])
def fast(request):
    return _backend_or_skip(request.param)


REF = get_backend("numpy")

GEOMETRIES = [  # (N, H, W, C, window, strides, padding)
    (2, 7, 7, 1, (3, 3), (1, 1), "valid"),
    (3, 9, 6, 2, (5, 5), (2, 2), "same"),
    (1, 8, 5, 3, (2, 3), (2, 1), "same"),
    (2, 6, 7, 3, (3, 2), (3, 2), "valid"),
    (2, 11, 13, 4, (3, 3), (2, 2), "same"),
    (4, 28, 28, 1, (5, 5), (1, 1), "valid"),
    (2, 12, 12, 32, (5, 5), (1, 1), "valid"),
    (2, 24, 24, 8, (2, 2), (2, 2), "valid"),
    # few channels: the Numba convolution builds its columns transposed (one row per tap), padding and stride too
    (2, 9, 16, 1, (3, 3), (2, 2), "same"),
    (2, 10, 12, 2, (3, 3), (1, 1), "same"),
    # one channel, horizontal stride 1: copied as runs along output rows, edges in the padding
    (2, 9, 16, 1, (5, 3), (2, 1), "same"),
    (3, 10, 7, 1, (3, 5), (1, 1), "same"),
]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _host(be, a):
    return be.to_numpy(a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_im2col_col2im_match_reference(fast, geom, dtype):
    n, h, w, c, k, s, pad = geom
    rng = np.random.default_rng(1)
    win = make_window(h, w, k, s, pad)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    cols = fast.im2col(fast.asarray(x), win)
    np.testing.assert_array_equal(_host(fast, cols), REF.im2col(x, win))
    g = rng.standard_normal(cols.shape).astype(dtype)
    dx, dx_ref = _host(fast, fast.col2im(fast.asarray(g), x.shape, win)), REF.col2im(g, x.shape, win)
    np.testing.assert_allclose(dx, dx_ref, rtol=TOL[dtype], atol=TOL[dtype])
    if fast.name == "numba":  # it adds each pixel's taps in the reference's order (i, then j): the very same sums
        np.testing.assert_array_equal(dx, dx_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_maxpool_matches_reference(fast, geom, dtype):
    n, h, w, c, k, s, pad = geom
    rng = np.random.default_rng(2)
    win = make_window(h, w, k, s, pad)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    x[0, :2, :2, 0] = 1.5  # a tie: the first maximum must win in every backend
    y, arg = fast.maxpool_forward(fast.asarray(x), win)
    y_ref, arg_ref = REF.maxpool_forward(x, win)
    np.testing.assert_array_equal(_host(fast, y), y_ref)
    np.testing.assert_array_equal(_host(fast, arg), arg_ref)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    np.testing.assert_allclose(
        _host(fast, fast.maxpool_backward(fast.asarray(dy), arg, x.shape, win)),
        REF.maxpool_backward(dy, arg_ref, x.shape, win),
        rtol=TOL[dtype],
        atol=TOL[dtype],
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "geom",
    [
        (3, 9, 7, 5, (2, 2), (2, 2), "same"),  # 2x2 windows inside, and cut by the padding at the right and bottom
        (2, 6, 6, 9, (2, 2), (1, 1), "valid"),  # overlapping 2x2 windows, all inside
        (2, 7, 8, 3, (2, 2), (3, 2), "same"),  # strides wider than the window
    ],
)
def test_maxpool_with_many_ties_takes_the_first_maximum(fast, geom, dtype):
    # Integers in [-2, 2]: most 2x2 windows hold ties, at every tap position (the Numba kernel's own 2x2 path).
    n, h, w, c, k, s, pad = geom
    win = make_window(h, w, k, s, pad)
    x = np.random.default_rng(5).integers(-2, 3, (n, h, w, c)).astype(dtype)
    y, arg = fast.maxpool_forward(fast.asarray(x), win)
    y_ref, arg_ref = REF.maxpool_forward(x, win)
    np.testing.assert_array_equal(_host(fast, y), y_ref)
    np.testing.assert_array_equal(_host(fast, arg), arg_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "geom", GEOMETRIES + [(2, 7, 9, 3, (3, 3), (1, 1), "same"), (1, 6, 5, 2, (4, 4), (3, 3), "same")]
)
def test_avgpool_matches_reference(fast, geom, dtype):
    # Odd sizes, stride 2, overlapping windows, "same" padding (windows at the edges hold fewer real cells: the
    # divisor differs per window). The Numba kernels add in the reference's order: equal to the last bit there.
    n, h, w, c, k, s, pad = geom
    rng = np.random.default_rng(12)
    win = make_window(h, w, k, s, pad)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    y, y_ref = fast.avgpool_forward(fast.asarray(x), win), REF.avgpool_forward(x, win)
    assert y_ref.dtype == dtype and _host(fast, y).dtype == dtype
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dx = fast.avgpool_backward(fast.asarray(dy), x.shape, win)
    dx_ref = REF.avgpool_backward(dy, x.shape, win)
    np.testing.assert_allclose(_host(fast, y), y_ref, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(_host(fast, dx), dx_ref, rtol=TOL[dtype], atol=TOL[dtype])
    if fast.name == "numba":
        np.testing.assert_array_equal(_host(fast, y), y_ref)
        np.testing.assert_array_equal(_host(fast, dx), dx_ref)
    out_y, out_dx = fast.xp.empty(y_ref.shape, dtype=dtype), fast.xp.empty(x.shape, dtype=dtype)
    assert fast.avgpool_forward(fast.asarray(x), win, out=out_y) is out_y
    assert fast.avgpool_backward(fast.asarray(dy), x.shape, win, out=out_dx) is out_dx
    np.testing.assert_array_equal(_host(fast, out_y), _host(fast, y))
    np.testing.assert_array_equal(_host(fast, out_dx), _host(fast, dx))


def test_avgpool_reference_divides_by_the_real_cells_only():
    # The reference itself, against a window-by-window loop written out with np.mean over the real cells.
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 5, 6, 3))
    win = make_window(5, 6, (3, 3), (2, 2), "same")
    y = REF.avgpool_forward(x, win)
    for oh in range(win.out_h):
        for ow in range(win.out_w):
            h0, w0 = oh * 2 - win.pad_top, ow * 2 - win.pad_left
            cells = x[:, max(h0, 0) : h0 + 3, max(w0, 0) : w0 + 3, :]
            np.testing.assert_allclose(y[:, oh, ow, :], cells.mean(axis=(1, 2)), rtol=1e-13)
    assert win.padded and REF.avgpool_forward(np.ones((1, 5, 6, 1)), win).min() == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_relu_and_backward_match_reference(fast, dtype):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((37, 11)).astype(dtype)
    b = rng.standard_normal(11).astype(dtype)
    y = fast.bias_relu(fast.asarray(z.copy()), fast.asarray(b))
    y_ref = REF.bias_relu(z.copy(), b)
    np.testing.assert_array_equal(_host(fast, y), y_ref)
    dy = rng.standard_normal(z.shape).astype(dtype)
    np.testing.assert_array_equal(_host(fast, fast.relu_backward(fast.asarray(dy), y)), REF.relu_backward(dy, y_ref))


def test_bias_relu_propagates_nan_like_the_reference(fast):
    # A NaN must survive ReLU (np.maximum's rule), or a diverging run would look healthy to the NaN guard.
    z = np.array([[np.nan, -1.0], [2.0, np.nan]], dtype=np.float32)
    y = fast.bias_relu(fast.asarray(z.copy()), fast.asarray(np.zeros(2, np.float32)))
    np.testing.assert_array_equal(_host(fast, y), REF.bias_relu(z.copy(), np.zeros(2, np.float32)))
    assert np.isnan(_host(fast, y)[0, 0])


def test_dropout_mask_matches_reference(fast):
    u = np.random.default_rng(4).random((50, 7), dtype=np.float32)
    np.testing.assert_array_equal(_host(fast, fast.dropout_mask(fast.asarray(u), 0.3)), REF.dropout_mask(u, 0.3))


RULE = Adadelta(1.0, 0.95, 1e-7)  # the plain rule, in the optimizer's own file


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_adadelta_matches_reference(fast, dtype):
    # The fused GPU kernel rounds its intermediates differently from NumPy's separate operations; measured on an
    # H200 in float32: one element in 91 off by 1 ulp of the parameter (1.9e-6 relative after cancellation).
    rng = np.random.default_rng(5)
    state = [rng.random((13, 7)).astype(dtype) for _ in range(4)]  # param, grad, E[g2], E[dx2]
    host = [a.copy() for a in state]
    dev = [fast.asarray(a) for a in state]
    step = fast.fused_update("adadelta")
    for _ in range(3):
        RULE.update_rule(np, *host)
        assert step(*dev, 1.0, 0.95, 1e-7) is True
    for a, b in zip(dev, host):
        np.testing.assert_allclose(_host(fast, a), b, rtol=TOL[dtype], atol=0)
        if fast.name == "numba":  # the same operations in the same order, element by element: bitwise equal
            np.testing.assert_array_equal(_host(fast, a), b)


def test_fused_update_is_offered_only_where_a_kernel_exists(fast):
    # The plain backend fuses nothing; a fast one offers Adadelta and nothing it does not know.
    assert REF.fused_update("adadelta") is None and not REF.gates_on_device and not REF.fuses_conv2d
    assert fast.fused_update("adadelta") is not None
    assert fast.fused_update("no such rule") is None
    assert fast.gates_on_device == (fast.name == "cupy")


def test_numba_fused_adadelta_declines_non_contiguous_arrays():
    # It returns False and touches nothing, so the caller runs the plain rule instead.
    fast = _backend_or_skip("numba")
    rng = np.random.default_rng(11)
    state = [rng.random((6, 8)) for _ in range(4)]
    before = [a.copy() for a in state]
    assert fast.fused_update("adadelta")(state[0][:, ::2], *(a[:, ::2] for a in state[1:]), 1.0, 0.95, 1e-7) is False
    for a, b in zip(state, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rows,p,f", [(73728 // 16, 25, 4), (64 * 9, 800, 64), (128, 1024, 120)])
def test_weight_gradient_matches_reference(fast, rows, p, f):
    # The first case takes the per-sample split (rows >= 64 * p * f), the others the single product.
    rng = np.random.default_rng(6)
    cols = rng.standard_normal((rows, p))
    dz = rng.standard_normal((rows, f))
    out = fast.xp.empty((p, f))
    got = fast.weight_gradient(fast.asarray(cols), fast.asarray(dz), out)
    np.testing.assert_allclose(
        _host(fast, got), REF.weight_gradient(cols, dz, np.empty((p, f))), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numba_uniform_is_numpys_stream(seed):
    # The Numba backend splits PCG64's 64-bit outputs itself; the numbers, and what the generator keeps for its
    # next draw (the high half left by an odd count), must be NumPy's: odd, even and empty draws, interleaved with
    # NumPy's own draws from the same generator.
    fast = _backend_or_skip("numba")
    mine, numpys = fast.make_rng(seed), np.random.default_rng(seed)
    for i, shape in enumerate([(3,), (4, 5), (1,), (0,), (7,), (2, 3), (128, 4, 4, 64), (5,), (3,), (128, 120)]):
        out = np.empty(shape, np.float32) if i % 2 else None  # into a caller's buffer, or a fresh array
        got, want = fast.uniform(mine, shape, np.float32, out=out), numpys.random(shape, dtype=np.float32)
        assert got.shape == want.shape and got.dtype == want.dtype and (out is None or got is out)
        np.testing.assert_array_equal(got, want)
        if i % 3 == 0:
            np.testing.assert_array_equal(mine.random(3, dtype=np.float32), numpys.random(3, dtype=np.float32))
            np.testing.assert_array_equal(mine.random(2), numpys.random(2))
    np.testing.assert_array_equal(fast.uniform(mine, (4,), np.float64), numpys.random(4))
    with pytest.raises(ValueError, match="shape"):
        fast.uniform(mine, (4, 3), np.float32, out=np.empty((3, 4), np.float32))


def test_dropout_apply_matches_reference(fast):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 9)).astype(np.float32)
    u = rng.random((40, 9), dtype=np.float32)
    y, m = fast.dropout_apply(fast.asarray(x), fast.asarray(u), 0.25)
    y_ref, m_ref = REF.dropout_apply(x, u, 0.25)
    np.testing.assert_array_equal(_host(fast, m), m_ref)
    np.testing.assert_array_equal(_host(fast, y), y_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_crossentropy_step_matches_reference(fast, dtype):
    rng = np.random.default_rng(8)
    z = rng.normal(0, 3, (33, 10))
    p = (np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype(dtype)
    p[0] = np.eye(10)[4]  # a saturated row: the clip matters there
    y = np.eye(10, dtype=dtype)[rng.integers(0, 10, 33)]
    loss, acc, grad = fast.softmax_crossentropy_step(fast.asarray(p), fast.asarray(y), 1e-7)
    loss_r, acc_r, grad_r = REF.softmax_crossentropy_step(p, y, 1e-7)
    assert float(loss) == pytest.approx(float(loss_r), rel=TOL[dtype])
    assert float(acc) == float(acc_r)
    np.testing.assert_allclose(_host(fast, grad), grad_r, rtol=TOL[dtype], atol=0)


def _close(got, want, tol):
    # Sums taken in another order: the largest difference relative to the largest entry (a float32 sum of up to
    # 2,304 terms here, each rounding by 6e-8 relative, typically drifts by ~50 * 6e-8 = 3e-6).
    scale = max(float(np.abs(want).max()), 1e-30)
    assert float(np.abs(got - want).max()) / scale <= tol, float(np.abs(got - want).max()) / scale


@pytest.mark.parametrize("chunk_rows", [None, 1])
@pytest.mark.parametrize("relu,use_bias", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_fused_conv2d_matches_reference(fast, geom, dtype, relu, use_bias, chunk_rows, monkeypatch):
    # The fused convolution (the Numba backend rebuilds im2col a few samples at a time) against the plain
    # composition numpy_ref.conv2d_forward/backward: chunk_rows=1 forces one sample per chunk, so chunk boundaries
    # and the split between threads are exercised on small inputs too.
    if not fast.fuses_conv2d:
        pytest.skip(f"backend {fast.name!r} composes the plain kernels (each tested above)")
    if chunk_rows is not None:
        monkeypatch.setattr(fast, "CHUNK_ROWS", chunk_rows)
    n, h, w, c, k, s, pad = geom
    n += 3  # an odd batch that does not split evenly between two threads
    rng = np.random.default_rng(9)
    win = make_window(h, w, k, s, pad)
    f = 5
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel2d = rng.standard_normal((k[0] * k[1] * c, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype) if use_bias else None
    z_ref, cols_ref = numpy_ref.conv2d_forward(np, x, kernel2d, bias, win, relu)
    xd, kd = fast.asarray(x), fast.asarray(kernel2d)
    z = fast.conv2d_fused_forward(xd, kd, None if bias is None else fast.asarray(bias), win, relu)
    _close(_host(fast, z), z_ref, TOL[dtype])
    dz = rng.standard_normal(z_ref.shape).astype(dtype)
    dw_ref, db_ref = np.empty_like(kernel2d), np.empty(f, dtype)
    dx_ref = numpy_ref.conv2d_backward(np, cols_ref, dz, kernel2d, x.shape, win, dw_ref, db_ref)
    dw, db = fast.xp.empty(kernel2d.shape, dtype=dtype), fast.xp.empty(f, dtype=dtype)
    dx = fast.conv2d_fused_backward(xd, fast.asarray(dz), kd, win, dw, db if use_bias else None)
    _close(_host(fast, dx), dx_ref, TOL[dtype])
    _close(_host(fast, dw), dw_ref, TOL[dtype])
    if use_bias:
        _close(_host(fast, db), db_ref, TOL[dtype])
    assert fast.conv2d_fused_backward(xd, fast.asarray(dz), kd, win, dw, None, input_gradient=False) is None
    _close(_host(fast, dw), dw_ref, TOL[dtype])
    # dY given with the ReLU output: dZ = dY * [y > 0] formed inside the kernel (from the forward's output when
    # that fused the ReLU, else from y itself)
    y_ref = z_ref if relu else np.maximum(z_ref, 0)
    y = z if relu else fast.asarray(y_ref)
    dx_ref = numpy_ref.conv2d_backward(np, cols_ref, dz, kernel2d, x.shape, win, dw_ref, db_ref, relu_output=y_ref)
    dx = fast.conv2d_fused_backward(xd, fast.asarray(dz), kd, win, dw, db, relu_output=y)
    assert float(np.abs(dw_ref).max()) > 0 and (y_ref == 0).any()
    for got, want in ((dx, dx_ref), (dw, dw_ref), (db, db_ref)):
        _close(_host(fast, got), want, TOL[dtype])


@pytest.mark.parametrize(
    "m,k,n,transposed",
    [(1, 3, 2, False), (7, 5, 3, True), (128, 1024, 120, False), (128, 120, 1024, True), (3, 64, 1, False)],
)
def test_matmul_matches_reference(fast, m, k, n, transposed):
    # The Numba backend splits rows between threads (fewer rows than threads included); b may be a transposed view.
    rng = np.random.default_rng(10)
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((n, k)).T if transposed else rng.standard_normal((k, n))
    got = fast.matmul(fast.asarray(a), fast.asarray(b) if not transposed else fast.asarray(b.T).T)
    _close(_host(fast, got), a @ b, 1e-12)
    out = fast.xp.empty((m, n))
    assert fast.matmul(fast.asarray(a), fast.asarray(b), out=out) is out
    _close(_host(fast, out), a @ b, 1e-12)


def test_numba_products_hold_blas_to_one_thread_and_restore_it():
    # The one-pool design: while a Numba kernel calls BLAS, BLAS may not start threads of its own; afterwards each
    # library has its thread count back (a user's own NumPy products are not slowed down).
    from threadpoolctl import ThreadpoolController

    nb = _backend_or_skip("numba")
    libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    if not libraries:
        pytest.skip("threadpoolctl finds no BLAS library in this process")
    before = [lib.get_num_threads() for lib in libraries]
    with nb._one_blas_thread:
        assert [lib.get_num_threads() for lib in libraries] == [1] * len(libraries)
        with nb._one_blas_thread:  # a second user (another Python thread, say): the counts stay held
            pass
        assert [lib.get_num_threads() for lib in libraries] == [1] * len(libraries)
    assert [lib.get_num_threads() for lib in libraries] == before
    a = np.ones((64, 8))
    nb.matmul(a, a.T)
    assert [lib.get_num_threads() for lib in libraries] == before
    # kernels from several Python threads at once: afterwards every library has its own count back
    import threading

    workers = [threading.Thread(target=lambda: [nb.matmul(a, a.T) for _ in range(200)]) for _ in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert [lib.get_num_threads() for lib in libraries] == before
