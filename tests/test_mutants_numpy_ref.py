"""The NumPy reference kernels, on what mutation testing (mutmut) showed no other test pinned down: the dtype of
what they return, the caller's ``out`` buffers, 'same' padding on the left in max pooling's backward, the dropout
scale and its boundary, the loss's clip bounds, and the loss and accuracy of the fused softmax step."""

import math

import numpy as np
import pytest

from minicnn.backend import numpy_ref as ref
from minicnn.backend.geometry import make_window


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_im2col_and_col2im_keep_float32_and_fill_the_callers_buffers():
    x, win = _images((2, 5, 5, 3)), make_window(5, 5, (3, 3), (1, 1), "same")
    cols = ref.im2col(np, x, win)
    assert cols.dtype == np.float32
    buf = np.empty_like(cols)
    assert ref.im2col(np, x, win, out=buf) is buf and np.array_equal(buf, cols)
    dx = ref.col2im(np, cols, x.shape, win)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    dx_buf = np.empty_like(x)
    assert ref.col2im(np, cols, x.shape, win, out=dx_buf) is dx_buf and np.array_equal(dx_buf, dx)


def test_max_pooling_with_same_padding_on_the_left_routes_every_gradient_to_its_maximum():
    # 3x3 windows, stride 1, 'same': one column of padding on the left and on the right.
    x, win = _images((1, 4, 5, 2)), make_window(4, 5, (3, 3), (1, 1), "same")
    assert win.pad_left == 1
    y, argmax = ref.maxpool_forward(np, x, win)
    y_buf, a_buf = np.empty_like(y), np.empty_like(argmax)
    got = ref.maxpool_forward(np, x, win, out=y_buf, argmax_out=a_buf)
    assert got[0] is y_buf and got[1] is a_buf and np.array_equal(y_buf, y) and np.array_equal(a_buf, argmax)
    dy = _images(y.shape, seed=1)
    dx = ref.maxpool_backward(np, dy, argmax, x.shape, win)
    assert dx.dtype == np.float32
    want = np.zeros_like(x)  # brute force: each output's gradient goes to the first maximum of its window
    for r in range(y.shape[1]):
        for c in range(y.shape[2]):
            for ch in range(x.shape[3]):
                rows, cols = range(max(r - 1, 0), min(r + 2, 4)), range(max(c - 1, 0), min(c + 2, 5))
                best = max((x[0, i, j, ch], -i, -j) for i in rows for j in cols)
                want[0, -best[1], -best[2], ch] += dy[0, r, c, ch]
    np.testing.assert_allclose(dx, want, rtol=1e-6)
    dx_buf = np.empty_like(x)
    assert ref.maxpool_backward(np, dy, argmax, x.shape, win, out=dx_buf) is dx_buf
    np.testing.assert_array_equal(dx_buf, dx)


def test_relu_backward_and_the_loss_gradient_write_into_the_callers_buffer():
    dy, y = _images((3, 4)), np.maximum(_images((3, 4), seed=2), 0)
    buf = np.empty_like(dy)
    assert ref.relu_backward(np, dy, y, out=buf) is buf
    np.testing.assert_array_equal(buf, dy * (y > 0))
    p, t = np.full((2, 3), 1 / 3, np.float32), np.eye(3, dtype=np.float32)[[0, 2]]
    grad_buf = np.empty_like(p)
    assert ref.softmax_crossentropy_grad(np, p, t, out=grad_buf) is grad_buf
    np.testing.assert_allclose(grad_buf, (p - t) / 2)
    assert ref.softmax_crossentropy_step(np, p, t, 1e-7, grad_out=grad_buf)[2] is grad_buf


def test_dropout_mask_scales_kept_units_by_one_over_keep_probability_and_keeps_uniform_equal_to_rate():
    uniform = np.array([0.0, 0.1, 0.25, 0.3, 0.99], np.float32)
    mask = ref.dropout_mask(np, uniform, 0.25)
    np.testing.assert_allclose(mask, [0, 0, 1 / 0.75, 1 / 0.75, 1 / 0.75], rtol=1e-6)
    buf = np.empty_like(uniform)
    assert ref.dropout_mask(np, uniform, 0.25, out=buf) is buf and np.array_equal(buf, mask)


def test_crossentropy_clips_certain_predictions_at_both_bounds():
    eps = 1e-7
    p = np.array([[1.0, 0.0], [1.0, 0.0]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    right, wrong = ref.crossentropy_per_sample(np, p, y, eps)
    assert right == pytest.approx(-math.log(1 - eps), rel=1e-6)  # clipped at 1 - eps, not 1: a small positive loss
    assert wrong == pytest.approx(-math.log(eps), rel=1e-12)


def test_the_softmax_step_reports_the_mean_loss_and_the_accuracy():
    # rows' argmax 1, 2, 0 against targets 1, 2, 1; neither the flat argmax of p (5) nor of y (1) gives 2/3
    p = np.array([[0.2, 0.6, 0.2], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]], np.float32)
    y = np.eye(3, dtype=np.float32)[[1, 2, 1]]
    loss, acc, _ = ref.softmax_crossentropy_step(np, p, y, 1e-7)
    assert loss == pytest.approx(-(math.log(0.6) + math.log(0.7) + math.log(0.4)) / 3, rel=1e-5)
    assert acc == pytest.approx(2 / 3) and acc.dtype == np.float32
    assert ref.accuracy(np, p, y) == pytest.approx(2 / 3)


# --- the kernels the Numba comparisons reach: against loops written here, in float64 ------------------------------
# Geometries with every asymmetry a swapped index would show: KH != KW, SH != SW, top/left padding != bottom/right
# (and != each other), windows clipped at both ends.
CONV_GEOMETRIES = [  # (H, W, kernel, strides, padding)
    (6, 7, (3, 2), (2, 1), "same"),
    (7, 5, (4, 3), (1, 2), "same"),
    (6, 7, (3, 2), (2, 3), "valid"),
]


def _naive_conv(x, kernel, bias, win):
    """z[n, oh, ow, f] = sum over (i, j, c) of x_padded[n, oh*sh + i, ow*sw + j, c] * kernel[i, j, c, f] + bias[f]."""
    n, h, w, c = x.shape
    xpad = np.zeros((n, h + win.pad_top + win.pad_bottom, w + win.pad_left + win.pad_right, c))
    xpad[:, win.pad_top : win.pad_top + h, win.pad_left : win.pad_left + w] = x
    z = np.zeros((n, win.out_h, win.out_w, kernel.shape[3]))
    for s in range(n):
        for oh in range(win.out_h):
            for ow in range(win.out_w):
                for f in range(kernel.shape[3]):
                    total = 0.0 if bias is None else bias[f]
                    for i in range(win.kh):
                        for j in range(win.kw):
                            for ch in range(c):
                                total += xpad[s, oh * win.sh + i, ow * win.sw + j, ch] * kernel[i, j, ch, f]
                    z[s, oh, ow, f] = total
    return z.reshape(-1, kernel.shape[3])


def _naive_conv_gradients(x, kernel, grad_z, win):
    """(dW, db, dX) of z = conv(x) + b by the chain rule, one product per term: z[s, oh, ow, f] reads
    x_padded[s, oh*sh + i, ow*sw + j, c] with weight kernel[i, j, c, f]."""
    n, h, w, c = x.shape
    xpad = np.zeros((n, h + win.pad_top + win.pad_bottom, w + win.pad_left + win.pad_right, c))
    xpad[:, win.pad_top : win.pad_top + h, win.pad_left : win.pad_left + w] = x
    dxpad, dw = np.zeros_like(xpad), np.zeros_like(kernel)
    g = grad_z.reshape(n, win.out_h, win.out_w, -1)
    for s in range(n):
        for oh in range(win.out_h):
            for ow in range(win.out_w):
                for f in range(kernel.shape[3]):
                    for i in range(win.kh):
                        for j in range(win.kw):
                            for ch in range(c):
                                r, q = oh * win.sh + i, ow * win.sw + j
                                dw[i, j, ch, f] += xpad[s, r, q, ch] * g[s, oh, ow, f]
                                dxpad[s, r, q, ch] += kernel[i, j, ch, f] * g[s, oh, ow, f]
    dx = dxpad[:, win.pad_top : win.pad_top + h, win.pad_left : win.pad_left + w]
    return dw, g.sum(axis=(0, 1, 2)), dx


def _conv_case(h, w, k, s, pad, c=2, f=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, h, w, c))
    kernel = rng.standard_normal((*k, c, f))
    bias = rng.standard_normal(f)
    return x, kernel, bias, make_window(h, w, k, s, pad)


@pytest.mark.parametrize("h,w,k,s,pad", CONV_GEOMETRIES)
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("relu", [True, False])
def test_conv2d_forward_is_the_convolution_sum_plus_bias_then_relu(h, w, k, s, pad, with_bias, relu):
    x, kernel, bias, win = _conv_case(h, w, k, s, pad)
    bias = bias if with_bias else None
    want = _naive_conv(x, kernel, bias, win)
    assert (want < 0).any() and (want > 0).any()  # the ReLU has something to cut, and something to keep
    want = np.maximum(want, 0) if relu else want
    z, cols = ref.conv2d_forward(np, x, kernel.reshape(-1, kernel.shape[3]), bias, win, relu)
    np.testing.assert_allclose(z, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(cols, ref.im2col(np, x, win))
    z_buf, cols_buf = np.full_like(z, np.nan), np.full_like(cols, np.nan)
    got = ref.conv2d_forward(np, x, kernel.reshape(-1, kernel.shape[3]), bias, win, relu, cols_out=cols_buf, out=z_buf)
    assert got[0] is z_buf and got[1] is cols_buf
    np.testing.assert_array_equal(z_buf, z)
    np.testing.assert_array_equal(cols_buf, cols)


@pytest.mark.parametrize("h,w,k,s,pad", CONV_GEOMETRIES)
def test_conv2d_backward_gives_the_chain_rules_gradients(h, w, k, s, pad):
    x, kernel, _, win = _conv_case(h, w, k, s, pad, seed=1)
    kernel2d = kernel.reshape(-1, kernel.shape[3])  # (KH*KW*C, F): not square, so a lost transpose cannot pass
    cols = ref.im2col(np, x, win)
    grad_z = np.random.default_rng(2).standard_normal((cols.shape[0], kernel.shape[3]))
    want_dw, want_db, want_dx = _naive_conv_gradients(x, kernel, grad_z, win)
    dw, db = np.full_like(kernel2d, np.nan), np.full(kernel.shape[3], np.nan)
    dx = ref.conv2d_backward(np, cols, grad_z, kernel2d, x.shape, win, dw, db)
    np.testing.assert_allclose(dw, want_dw.reshape(kernel2d.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, want_db, rtol=1e-12, atol=1e-12)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)
    # without a bias gradient the rest is unchanged; without the input gradient, None and the weights' still written
    dw2 = np.full_like(kernel2d, np.nan)
    np.testing.assert_array_equal(ref.conv2d_backward(np, cols, grad_z, kernel2d, x.shape, win, dw2, None), dx)
    np.testing.assert_array_equal(dw2, dw)
    dw3, db3 = np.full_like(kernel2d, np.nan), np.full(kernel.shape[3], np.nan)
    assert ref.conv2d_backward(np, cols, grad_z, kernel2d, x.shape, win, dw3, db3, input_gradient=False) is None
    np.testing.assert_array_equal(dw3, dw)
    np.testing.assert_array_equal(db3, db)


def test_conv2d_backward_through_the_relu_masks_the_gradient_where_the_output_is_zero():
    x, kernel, bias, win = _conv_case(*CONV_GEOMETRIES[0], seed=3)
    kernel2d = kernel.reshape(-1, kernel.shape[3])
    y, cols = ref.conv2d_forward(np, x, kernel2d, bias, win, relu=True)
    assert (y == 0).any() and (y > 0).any()
    grad_y = np.random.default_rng(4).standard_normal(y.shape)
    grad_z = grad_y * (y > 0)
    want_dw, want_db, want_dx = _naive_conv_gradients(x, kernel, grad_z, win)
    dw, db = np.empty_like(kernel2d), np.empty(kernel.shape[3])
    dx = ref.conv2d_backward(np, cols, grad_y, kernel2d, x.shape, win, dw, db, relu_output=y)
    np.testing.assert_allclose(dw, want_dw.reshape(kernel2d.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, want_db, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)


def test_conv2d_gradients_match_finite_differences():
    # the loss sum(G * relu(conv(x) + b)) at a point where no pre-activation is near 0 (the ReLU's kink)
    x, kernel, bias, win = _conv_case(5, 4, (3, 2), (2, 1), "same", c=2, f=2, seed=5)
    kernel2d = kernel.reshape(-1, 2)
    y, cols = ref.conv2d_forward(np, x, kernel2d, bias, win, relu=True)
    z, _ = ref.conv2d_forward(np, x, kernel2d, bias, win, relu=False)
    assert np.abs(z).min() > 1e-3
    g = np.random.default_rng(6).standard_normal(y.shape)

    def loss(x_, k_, b_):
        return np.sum(g * ref.conv2d_forward(np, x_, k_, b_, win, relu=True)[0])

    dw, db = np.empty_like(kernel2d), np.empty(2)
    dx = ref.conv2d_backward(np, cols, g, kernel2d, x.shape, win, dw, db, relu_output=y)
    h = 1e-6
    for got, arr in ((dx, x), (dw, kernel2d), (db, bias)):
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += h
            minus[idx] -= h
            args_p = [plus if a is arr else a for a in (x, kernel2d, bias)]
            args_m = [minus if a is arr else a for a in (x, kernel2d, bias)]
            numeric[idx] = (loss(*args_p) - loss(*args_m)) / (2 * h)
        np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-7)


class _MatmulSpy:
    """A stand-in array module that records the shape of each matmul's first operand (NumPy does the work)."""

    def __init__(self):
        self.calls = []

    def matmul(self, a, b, out=None):
        self.calls.append(a.shape)
        return np.matmul(a, b, out=out)


@pytest.mark.parametrize("rows,groups", [(128 * 3, 128), (64 * 5, 64), (32 * 7, 32), (16 * 9, 16), (8 * 11, 8)])
def test_weight_gradient_split_sums_per_group_products_over_the_largest_of_128_to_8_groups(rows, groups):
    rng = np.random.default_rng(rows)
    cols, grad_z = rng.standard_normal((rows, 3)), rng.standard_normal((rows, 2))
    want = cols.T @ grad_z
    spy, out = _MatmulSpy(), np.full((3, 2), np.nan)
    assert ref.weight_gradient_split(spy, cols, grad_z, out, min_rows_per_entry=1) is out
    assert spy.calls == [(groups, 3, rows // groups)]  # one batched product: a (P, rows/n) block per group
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


def test_weight_gradient_split_takes_one_product_below_64_rows_per_entry_or_when_no_group_size_divides():
    rng = np.random.default_rng(7)
    p, f = 2, 3
    for rows, split in ((64 * p * f, True), (64 * p * f - 8, False), (64 * p * f + 4, False)):
        cols, grad_z = rng.standard_normal((rows, p)), rng.standard_normal((rows, f))
        spy, out = _MatmulSpy(), np.full((p, f), np.nan)
        assert ref.weight_gradient_split(spy, cols, grad_z, out) is out
        assert [len(shape) == 3 for shape in spy.calls] == [split], rows
        np.testing.assert_allclose(out, cols.T @ grad_z, rtol=1e-12, atol=1e-12)


def test_weight_and_bias_gradients_write_into_the_callers_buffers():
    rng = np.random.default_rng(8)
    cols, grad_z = rng.standard_normal((10, 4)), rng.standard_normal((10, 3))
    dw, db = np.full((4, 3), np.nan), np.full(3, np.nan)
    assert ref.weight_gradient(np, cols, grad_z, dw) is dw
    assert ref.bias_gradient(np, grad_z, db) is db
    for p in range(4):
        for f in range(3):
            assert dw[p, f] == pytest.approx(sum(cols[m, p] * grad_z[m, f] for m in range(10)), rel=1e-12)
    np.testing.assert_allclose(db, [sum(grad_z[m, f] for m in range(10)) for f in range(3)], rtol=1e-12)


# --- average pooling: each window's mean over its real cells (Keras: padding neither added nor counted) -----------
POOL_GEOMETRIES = [  # (H, W, pool, strides, padding)
    (5, 7, (4, 3), (2, 3), "same"),  # rows: pad 1 top, 2 bottom; columns: pad 1 left, 1 right
    (6, 5, (2, 3), (1, 2), "same"),
    (7, 6, (3, 2), (2, 1), "valid"),
]


def _naive_pool_windows(h, w, win):
    """{(oh, ow): [(r, c) of the window's real cells]} by walking every window."""
    cells = {}
    for oh in range(win.out_h):
        for ow in range(win.out_w):
            rows = [oh * win.sh + i - win.pad_top for i in range(win.kh)]
            cols = [ow * win.sw + j - win.pad_left for j in range(win.kw)]
            cells[oh, ow] = [(r, c) for r in rows for c in cols if 0 <= r < h and 0 <= c < w]
    return cells


@pytest.mark.parametrize("h,w,k,s,pad", POOL_GEOMETRIES)
def test_average_pooling_counts_forward_and_backward_match_window_walks(h, w, k, s, pad):
    win = make_window(h, w, k, s, pad)
    cells = _naive_pool_windows(h, w, win)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, h, w, 3))
    counts = ref.avgpool_counts(np, x.shape, win, np.float32)
    assert counts.dtype == np.float32 and counts.shape == (win.out_h, win.out_w)
    np.testing.assert_array_equal(counts, [[len(cells[oh, ow]) for ow in range(win.out_w)] for oh in range(win.out_h)])
    if pad == "same":
        assert counts.min() < win.kh * win.kw  # some windows are clipped: the padding is not counted
    want = np.zeros((2, win.out_h, win.out_w, 3))
    for (oh, ow), where in cells.items():
        want[:, oh, ow] = sum(x[:, r, c] for r, c in where) / len(where)
    y = ref.avgpool_forward(np, x, win)
    np.testing.assert_allclose(y, want, rtol=1e-12)
    y_buf = np.full_like(want, np.nan)
    assert ref.avgpool_forward(np, x, win, out=y_buf) is y_buf
    np.testing.assert_array_equal(y_buf, y)
    dy = rng.standard_normal(y.shape)
    want_dx = np.zeros_like(x)
    for (oh, ow), where in cells.items():
        for r, c in where:
            want_dx[:, r, c] += dy[:, oh, ow] / len(where)
    dx = ref.avgpool_backward(np, dy, x.shape, win)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12)
    dx_buf = np.full_like(x, np.nan)
    assert ref.avgpool_backward(np, dy, x.shape, win, out=dx_buf) is dx_buf
    np.testing.assert_array_equal(dx_buf, dx)


def test_average_pooling_keeps_float32():
    x, win = _images((2, 5, 7, 3)), make_window(5, 7, (4, 3), (2, 3), "same")
    y = ref.avgpool_forward(np, x, win)
    assert y.dtype == np.float32
    assert ref.avgpool_backward(np, y, x.shape, win).dtype == np.float32


# --- batch normalization: against per-channel loops and finite differences -----------------------------------------
def _bn_case(seed=10, m=6, c=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, c)) * [1.0, 3.0, 0.5] + [0.5, -2.0, 4.0]
    return x, rng.standard_normal(c) + 1.5, rng.standard_normal(c)


def _naive_bn(x, mean, var, gamma, beta, eps):
    y = np.empty_like(x)
    for ch in range(x.shape[1]):
        g = 1.0 if gamma is None else gamma[ch]
        b = 0.0 if beta is None else beta[ch]
        for m in range(x.shape[0]):
            y[m, ch] = g * (x[m, ch] - mean[ch]) / math.sqrt(var[ch] + eps) + b
    return y


@pytest.mark.parametrize("affine", ["both", "no gamma", "no beta", "neither"])
def test_batchnorm_forward_in_training_uses_the_batch_mean_and_biased_variance(affine):
    x, gamma, beta = _bn_case()
    gamma = None if affine in ("no gamma", "neither") else gamma
    beta = None if affine in ("no beta", "neither") else beta
    eps = 0.01  # large enough to matter next to the variances (0.25 .. 9)
    mean = [sum(x[:, ch]) / len(x) for ch in range(3)]
    var = [sum((x[:, ch] - mean[ch]) ** 2) / len(x) for ch in range(3)]  # divided by M, not M - 1
    y, xhat, got_mean, got_var, inv_std = ref.batchnorm_forward_training(np, x, gamma, beta, eps)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(got_var, var, rtol=1e-12)
    np.testing.assert_allclose(inv_std, [1 / math.sqrt(v + eps) for v in var], rtol=1e-12)
    np.testing.assert_allclose(xhat, _naive_bn(x, mean, var, None, None, eps), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, _naive_bn(x, mean, var, gamma, beta, eps), rtol=1e-12, atol=1e-12)
    y_buf, xhat_buf = np.full_like(x, np.nan), np.full_like(x, np.nan)
    got = ref.batchnorm_forward_training(np, x, gamma, beta, eps, out=y_buf, xhat_out=xhat_buf)
    assert got[0] is y_buf and got[1] is xhat_buf
    np.testing.assert_array_equal(y_buf, y)
    np.testing.assert_array_equal(xhat_buf, xhat)


@pytest.mark.parametrize("affine", ["both", "no gamma", "no beta"])
def test_batchnorm_forward_in_inference_uses_the_given_statistics_and_leaves_xhat_alone(affine):
    x, gamma, beta = _bn_case(seed=11)
    gamma = None if affine == "no gamma" else gamma
    beta = None if affine == "no beta" else beta
    mean, var, eps = np.array([0.3, -1.0, 2.0]), np.array([0.5, 4.0, 0.2]), 0.05
    y, xhat, inv_std = ref.batchnorm_forward_inference(np, x, mean, var, gamma, beta, eps)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(var + eps), rtol=1e-12)
    np.testing.assert_allclose(xhat, _naive_bn(x, mean, var, None, None, eps), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, _naive_bn(x, mean, var, gamma, beta, eps), rtol=1e-12, atol=1e-12)
    y_buf, xhat_buf = np.full_like(x, np.nan), np.full_like(x, np.nan)
    got = ref.batchnorm_forward_inference(np, x, mean, var, gamma, beta, eps, out=y_buf, xhat_out=xhat_buf)
    assert got[0] is y_buf and got[1] is xhat_buf
    np.testing.assert_array_equal(y_buf, y)
    np.testing.assert_array_equal(xhat_buf, xhat)


def test_batchnorm_affine_fills_a_missing_scale_with_ones_and_a_missing_offset_with_zeros():
    gamma, beta = np.array([2.0, 3.0], np.float32), np.array([-1.0, 1.0], np.float32)
    assert ref.batchnorm_affine(np, gamma, beta, 2, np.float32) == (gamma, beta)
    g, b = ref.batchnorm_affine(np, None, None, 4, np.float32)
    assert g.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(g, np.ones(4))
    np.testing.assert_array_equal(b, np.zeros(4))
    g, b = ref.batchnorm_affine(np, gamma, None, 2, np.float64)
    assert g is gamma and b.dtype == np.float64 and np.array_equal(b, [0, 0])
    g, b = ref.batchnorm_affine(np, None, beta, 2, np.float64)
    assert b is beta and g.dtype == np.float64 and np.array_equal(g, [1, 1])


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("with_gamma", [True, False])
def test_batchnorm_backward_matches_finite_differences(training, with_gamma):
    # training: the loss sum(G * bn(x)) with the batch's own statistics, so dX flows through mean and variance too;
    # inference: with fixed statistics. dgamma and dbeta by differences in gamma and beta.
    x, gamma, beta = _bn_case(seed=12)
    gamma = gamma if with_gamma else None
    eps = 0.01
    mean, var = np.array([0.3, -1.0, 2.0]), np.array([0.5, 4.0, 0.2])
    g = np.random.default_rng(13).standard_normal(x.shape)

    def forward(x_, gamma_, beta_):
        if training:
            return ref.batchnorm_forward_training(np, x_, gamma_, beta_, eps)
        return ref.batchnorm_forward_inference(np, x_, mean, var, gamma_, beta_, eps)

    def loss(x_, gamma_, beta_):
        return np.sum(g * forward(x_, gamma_, beta_)[0])

    out = forward(x, gamma, beta)
    xhat, inv_std = out[1], out[-1]
    bufs = np.full_like(x, np.nan), np.full(3, np.nan), np.full(3, np.nan)
    dx, dgamma, dbeta = ref.batchnorm_backward(np, g, xhat, gamma, inv_std, training, *bufs)
    assert dx is bufs[0] and dgamma is bufs[1] and dbeta is bufs[2]
    plain = ref.batchnorm_backward(np, g, xhat, gamma, inv_std, training)
    for a, b in zip(plain, (dx, dgamma, dbeta)):
        np.testing.assert_array_equal(a, b)
    h = 1e-6
    gamma_or_ones = np.ones(3) if gamma is None else gamma
    for got, which in ((dx, 0), (dgamma, 1), (dbeta, 2)):
        args = [x, gamma_or_ones, beta]
        numeric = np.zeros_like(args[which])
        for idx in np.ndindex(numeric.shape):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[which][idx] += h
            minus[which][idx] -= h
            numeric[idx] = (loss(*plus) - loss(*minus)) / (2 * h)
        np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-7)


def test_average_pooling_backward_in_float32_adds_float32_shares_in_window_order():
    # each window's share dy / count, rounded to float32, added to its cells window offset by window offset: the
    # kernel's float32 arithmetic bit for bit (counts 4, 6, 9: the shares are inexact, so the rounding shows)
    x, win = _images((2, 6, 6, 3)), make_window(6, 6, (3, 3), (1, 1), "same")
    dy = _images((2, win.out_h, win.out_w, 3), seed=14)
    cells = _naive_pool_windows(6, 6, win)
    want = np.zeros_like(x)
    for i in range(win.kh):
        for j in range(win.kw):
            for (oh, ow), where in cells.items():
                r, c = oh * win.sh + i - win.pad_top, ow * win.sw + j - win.pad_left
                if (r, c) in where:
                    want[:, r, c] += dy[:, oh, ow] / np.float32(len(where))
    dx = ref.avgpool_backward(np, dy, x.shape, win)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, want)


def test_crossentropy_normalises_each_row_over_its_classes():
    # three rows of four classes (a sum over the wrong axis cannot keep the shape), none summing to 1
    p = np.array([[0.2, 0.5, 0.1, 0.4], [0.3, 0.3, 0.6, 0.1], [2.0, 1.0, 0.5, 0.5]])
    y = np.eye(4)[[1, 2, 0]]
    eps = 1e-7
    want = [-math.log(min(max(p[r, k] / sum(p[r]), eps), 1 - eps)) for r, k in enumerate([1, 2, 0])]
    got = ref.crossentropy_per_sample(np, p, y, eps)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_batchnorm_backward_defaults_to_training():
    x, gamma, beta = _bn_case(seed=15)
    _, xhat, _, _, inv_std = ref.batchnorm_forward_training(np, x, gamma, beta, 0.01)
    dy = np.random.default_rng(16).standard_normal(x.shape)
    default = ref.batchnorm_backward(np, dy, xhat, gamma, inv_std)
    training = ref.batchnorm_backward(np, dy, xhat, gamma, inv_std, True)
    inference = ref.batchnorm_backward(np, dy, xhat, gamma, inv_std, False)
    np.testing.assert_array_equal(default[0], training[0])
    assert not np.allclose(default[0], inference[0])
