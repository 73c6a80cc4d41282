"""Fused optimizer steps: each rule's arithmetic in one parallel pass over a parameter's elements."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..base import adam_numbers
from .threads import kernel_threads

# Seconds per element of the optimizer kernels on one thread (the 2-core VM): small parameters are updated on one
# thread (threads.kernel_threads). Elementwise, so the results do not depend on the threads.
UPDATE_SECONDS = 0.6e-9


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
    with kernel_threads(param.size * UPDATE_SECONDS):
        adadelta_kernel(*(a.reshape(-1) for a in arrays), t(learning_rate), t(rho), t(1 - rho), t(epsilon))
    return True


@njit(parallel=True, cache=True)
def adam_kernel(
    param,
    grad,
    momentums,
    velocities,
    velocity_hats,
    learning_rate,
    lr_t,
    one_minus_beta_1,
    one_minus_beta_2,
    epsilon,
    weight_decay,
    amsgrad,
):
    """``minicnn.optimizers.Adam.update_rule`` (and AdamW's decay before it) in one pass over flat arrays, the same
    operations in the same order and dtype for each element (so the results are bitwise equal). ``velocity_hats``
    is read and written only with ``amsgrad``."""
    for i in prange(param.size):
        x = param[i]
        if weight_decay != 0:
            x = x - x * weight_decay * learning_rate
        g = grad[i]
        m = momentums[i] + (g - momentums[i]) * one_minus_beta_1
        v = velocities[i] + (g * g - velocities[i]) * one_minus_beta_2
        momentums[i] = m
        velocities[i] = v
        if amsgrad:
            h = velocity_hats[i]
            v = v if (v > h or v != v) else h  # np.maximum: the larger, NaN if either is NaN
            velocity_hats[i] = v
        param[i] = x - m * lr_t / (np.sqrt(v) + epsilon)


def adam_step(
    param,
    grad,
    momentums,
    velocities,
    learning_rate,
    lr_t,
    one_minus_beta_1,
    one_minus_beta_2,
    epsilon,
    weight_decay,
    gate=None,
    velocity_hats=None,
):
    """One Adam (AdamW with ``weight_decay``) step in place; True when taken, False (nothing touched) when an array
    is not C-contiguous: the caller then runs its plain rule. The numbers (``Adam.hyperparameters()``, computed on
    the host in float64) enter the kernel in the weights' dtype. ``gate`` is ignored (tested on the host)."""
    arrays = (param, grad, momentums, velocities) + (() if velocity_hats is None else (velocity_hats,))
    if not all(a.flags.c_contiguous for a in arrays):
        return False
    flat = [a.reshape(-1) for a in arrays]
    hats = flat[4] if velocity_hats is not None else flat[3]  # a placeholder the kernel does not touch
    numbers = adam_numbers(param.dtype, learning_rate, lr_t, one_minus_beta_1, one_minus_beta_2, epsilon, weight_decay)
    with kernel_threads(param.size * UPDATE_SECONDS):
        adam_kernel(*flat[:4], hats, *numbers, velocity_hats is not None)
    return True


def adam_amsgrad_step(
    param,
    grad,
    momentums,
    velocities,
    velocity_hats,
    learning_rate,
    lr_t,
    one_minus_beta_1,
    one_minus_beta_2,
    epsilon,
    weight_decay,
    gate=None,
):
    """:func:`adam_step` with AMSGrad's ``velocity_hats`` (the slots in ``Adam.slot_names`` order)."""
    return adam_step(
        param,
        grad,
        momentums,
        velocities,
        learning_rate,
        lr_t,
        one_minus_beta_1,
        one_minus_beta_2,
        epsilon,
        weight_decay,
        gate,
        velocity_hats=velocity_hats,
    )
