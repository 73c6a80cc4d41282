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
