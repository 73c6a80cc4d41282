"""The plain reference kernels: im2col/col2im adjointness and max-pooling's first-maximum rule."""

import numpy as np
import pytest

from minicnn.backend import get_backend, make_window

GEOMETRIES = [  # (H, W, C, kernel, strides, padding)
    (7, 7, 1, (3, 3), (1, 1), "valid"),
    (8, 5, 3, (2, 3), (2, 1), "same"),
    (9, 6, 2, (5, 5), (2, 2), "same"),
    (6, 7, 3, (3, 2), (3, 2), "valid"),
    (5, 5, 1, (1, 1), (1, 1), "same"),
]


@pytest.mark.parametrize("h,w,c,k,s,pad", GEOMETRIES)
def test_im2col_and_col2im_are_adjoint(h, w, c, k, s, pad):
    # <col2im(g), x> == <g, im2col(x)> for all x, g: exact up to float64 rounding (sums of ~100 terms).
    be = get_backend("numpy")
    rng = np.random.default_rng(0)
    win = make_window(h, w, k, s, pad)
    x = rng.standard_normal((2, h, w, c))
    cols = be.im2col(x, win)
    g = rng.standard_normal(cols.shape)
    lhs = np.sum(be.col2im(g, x.shape, win) * x)
    rhs = np.sum(g * cols)
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_im2col_row_holds_the_patch_in_kernel_order():
    be = get_backend("numpy")
    x = np.arange(2 * 5 * 6 * 3, dtype=np.float64).reshape(2, 5, 6, 3)
    win = make_window(5, 6, (3, 2), (2, 2), "valid")
    cols = be.im2col(x, win).reshape(2, win.out_h, win.out_w, -1)
    np.testing.assert_array_equal(cols[1, 1, 2], x[1, 2:5, 4:6, :].ravel())


def test_same_padding_matches_tensorflow_rule():
    # TensorFlow: out = ceil(n / s), the smaller half of the padding goes first.
    win = make_window(7, 8, (4, 3), (2, 3), "same")
    assert (win.out_h, win.out_w) == (4, 3)
    assert (win.pad_top, win.pad_bottom) == (1, 2)  # total (4-1)*2 + 4 - 7 = 3
    assert (win.pad_left, win.pad_right) == (0, 1)  # total (3-1)*3 + 3 - 8 = 1: 0 before, 1 after


def test_maxpool_routes_gradient_to_first_maximum_on_ties():
    be = get_backend("numpy")
    x = np.zeros((1, 2, 2, 1))
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = 5.0  # two equal maxima; (0, 1) comes first in row-major order
    win = make_window(2, 2, (2, 2), (2, 2), "valid")
    y, arg = be.maxpool_forward(x, win)
    assert y[0, 0, 0, 0] == 5.0 and arg[0, 0, 0, 0] == 1
    dx = be.maxpool_backward(np.ones_like(y), arg, x.shape, win)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 1], [0, 0]])


def test_maxpool_overlapping_windows_accumulate():
    be = get_backend("numpy")
    x = np.array([1.0, 9.0, 2.0, 3.0]).reshape(1, 1, 4, 1)
    win = make_window(1, 4, (1, 3), (1, 1), "valid")  # windows [1,9,2] and [9,2,3] share the winner 9
    y, arg = be.maxpool_forward(x, win)
    np.testing.assert_array_equal(y.ravel(), [9, 9])
    dx = be.maxpool_backward(np.array([2.0, 3.0]).reshape(y.shape), arg, x.shape, win)
    np.testing.assert_array_equal(dx.ravel(), [0, 5, 0, 0])


def test_maxpool_same_padding_never_picks_the_padding():
    be = get_backend("numpy")
    x = -np.ones((1, 3, 3, 1))
    win = make_window(3, 3, (2, 2), (2, 2), "same")
    y, _ = be.maxpool_forward(x, win)
    np.testing.assert_array_equal(y, -np.ones((1, 2, 2, 1)))
