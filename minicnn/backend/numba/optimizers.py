"""Fused optimizer steps: each rule's arithmetic in one parallel pass over a parameter's elements."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def adadelta_kernel(param, grad, accumulated_grad, accumulated_delta, learning_rate, rho, one_minus_rho, epsilon):
    """``minicnn.optimizers.Adadelta.update_rule`` in one pass over flat arrays, the same operations in the same
    order for each element (so the results are bitwise equal)."""
    for i in prange(param.size):
        g = grad[i]
        a = accumulated_grad[i] * rho + one_minus_rho * (g * g)
        accumulated_grad[i] = a
        delta = np.sqrt(accumulated_delta[i] + epsilon) / np.sqrt(a + epsilon) * g
        accumulated_delta[i] = accumulated_delta[i] * rho + one_minus_rho * (delta * delta)
        param[i] -= delta * learning_rate


def adadelta_step(param, grad, accumulated_grad, accumulated_delta, learning_rate, rho, epsilon, gate=None):
    """One Adadelta step in place (the rule: ``minicnn.optimizers.Adadelta.update_rule``); True when taken, False
    (nothing touched) when an array is not C-contiguous: the caller then runs its plain rule. ``gate`` is
    ignored: the caller tests it on the host (``NumbaBackend.gates_on_device`` is False)."""
    arrays = (param, grad, accumulated_grad, accumulated_delta)
    if not all(a.flags.c_contiguous for a in arrays):
        return False
    t = param.dtype.type
    adadelta_kernel(*(a.reshape(-1) for a in arrays), t(learning_rate), t(rho), t(1 - rho), t(epsilon))
    return True
