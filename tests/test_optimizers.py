"""Optimizers against two steps worked out by hand."""

import math

import numpy as np
import pytest

from minicnn.optimizers import SGD, Adadelta


def test_adadelta_two_steps_by_hand():
    lr, rho, eps = 1.0, 0.95, 1e-7
    x = np.array([1.0, -2.0])
    opt = Adadelta(learning_rate=lr, rho=rho, epsilon=eps)
    g1, g2 = np.array([0.5, -1.0]), np.array([0.1, 0.3])
    # step 1, first element: E[g2] = 0.05 * 0.25 = 0.0125; delta = sqrt(0 + eps)/sqrt(0.0125 + eps) * 0.5
    eg2 = 0.05 * 0.25
    d1 = math.sqrt(eps) / math.sqrt(eg2 + eps) * 0.5
    edx2 = 0.05 * d1 * d1
    # step 2: E[g2] = 0.95 * 0.0125 + 0.05 * 0.01; delta uses the E[dx2] of step 1
    eg2_2 = 0.95 * eg2 + 0.05 * 0.01
    d2 = math.sqrt(edx2 + eps) / math.sqrt(eg2_2 + eps) * 0.1
    opt.apply([x], [g1])
    assert x[0] == pytest.approx(1.0 - lr * d1, rel=1e-15)
    assert opt.accumulated_delta[0][0] == pytest.approx(edx2, rel=1e-14)
    opt.apply([x], [g2])
    assert x[0] == pytest.approx(1.0 - d1 - d2, rel=1e-15)
    assert opt.accumulated_grad[0][0] == pytest.approx(eg2_2, rel=1e-14)
    assert opt.iterations == 2


def test_adadelta_learning_rate_scales_the_step_but_not_the_accumulator():
    a, b = np.array([1.0]), np.array([1.0])
    fast, slow = Adadelta(1.0), Adadelta(0.001)
    for g in (0.5, -0.2, 0.3):
        fast.apply([a], [np.array([g])])
        slow.apply([b], [np.array([g])])
    np.testing.assert_allclose(fast.accumulated_delta[0], slow.accumulated_delta[0], rtol=1e-15)
    # 1.0 - b cancels: b moved by only ~2e-6, so 1e-16 rounding on b is ~1e-10 relative on the difference.
    np.testing.assert_allclose(1.0 - b, (1.0 - a) * 0.001, rtol=1e-9)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_two_steps_by_hand(nesterov):
    lr, m = 0.1, 0.9
    x = np.array([2.0])
    opt = SGD(learning_rate=lr, momentum=m, nesterov=nesterov)
    opt.apply([x], [np.array([1.0])])  # v = -0.1
    opt.apply([x], [np.array([0.5])])  # v = 0.9 * -0.1 - 0.05 = -0.14
    if nesterov:  # x += m*v - lr*g each step
        expected = 2.0 + (0.9 * -0.1 - 0.1) + (0.9 * -0.14 - 0.05)
    else:
        expected = 2.0 - 0.1 - 0.14
    assert x[0] == pytest.approx(expected, rel=1e-15)
    assert opt.velocity[0][0] == pytest.approx(-0.14, rel=1e-15)


def test_plain_sgd_step():
    x = np.array([1.0, 2.0])
    SGD(learning_rate=0.5).apply([x], [np.array([2.0, -2.0])])
    np.testing.assert_array_equal(x, [0.0, 3.0])


@pytest.mark.parametrize("kwargs", [{"learning_rate": 0}, {"rho": 1.0}, {"epsilon": 0}])
def test_adadelta_rejects_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Adadelta(**kwargs)
