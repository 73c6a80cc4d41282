"""Weight regularizers, Keras 3's: a penalty on a weight that training adds to the loss.

For a weight ``W`` (any shape; sums over all its entries)::

    L1(l1):       penalty = l1 * sum |W|                    dpenalty/dW = l1 * sign(W)      (0 at W = 0)
    L2(l2):       penalty = l2 * sum W^2                    dpenalty/dW = 2 * l2 * W
    L1L2(l1, l2): both terms added

A layer takes them as ``kernel_regularizer=`` and ``bias_regularizer=`` (``Conv2D``, ``Dense``). Training then
minimises ``loss = data loss + sum of every penalty``: the trainer adds the penalties to the loss it reports (in
``fit`` and in ``evaluate``, as Keras does) and each penalty's gradient to its weight's gradient. The penalty does
not depend on the batch: it is added once per batch, not per sample.

Keras's defaults: ``l1()`` and ``l2()`` take 0.01; ``L1L2`` (and its alias ``l1_l2``) take ``l1=0.0, l2=0.0``
(Keras 3 changed that alias: Keras 2's ``l1_l2`` defaulted to 0.01 each).

Example:
    >>> import numpy as np
    >>> from minicnn import regularizers
    >>> float(regularizers.l2(0.5)(np.array([1.0, -2.0])))     # 0.5 * (1 + 4)
    2.5
"""

from __future__ import annotations

import math

from .backend import backend_of


def _factor(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite float, got {value!r}")
    return float(value)


class Regularizer:
    """A penalty on one weight: ``penalty(xp, w)`` (a 0-d array of ``w``'s dtype) and ``add_gradient(xp, w, grad)``
    (``grad += dpenalty/dw``, in place). ``regularizer(w)`` is the penalty, Keras's call."""

    def penalty(self, xp, w):
        raise NotImplementedError

    def add_gradient(self, xp, w, grad) -> None:
        raise NotImplementedError

    def __call__(self, w):
        return self.penalty(backend_of(w).xp, w)

    def get_config(self) -> dict:
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """``l1 * sum|W| + l2 * sum W^2``; gradient ``l1 * sign(W) + 2 * l2 * W``. A zero factor adds nothing."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = _factor(l1, "l1"), _factor(l2, "l2")

    def penalty(self, xp, w):
        t = w.dtype.type
        total = xp.zeros((), dtype=w.dtype)
        if self.l1 != 0.0:
            total = total + t(self.l1) * xp.abs(w).sum()
        if self.l2 != 0.0:
            total = total + t(self.l2) * (w * w).sum()
        return total

    def add_gradient(self, xp, w, grad) -> None:
        t = w.dtype.type
        if self.l1 != 0.0:
            grad += t(self.l1) * xp.sign(w)
        if self.l2 != 0.0:
            grad += t(2.0 * self.l2) * w

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum|W|`` (Keras's ``L1``, default 0.01); gradient ``l1 * sign(W)``."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum W^2`` (Keras's ``L2``, default 0.01); gradient ``2 * l2 * W``."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2  # Keras's lower-case names

REGULARIZERS = {"l1": L1, "l2": L2, "l1l2": L1L2, "l1_l2": L1L2}


def get(identifier):
    """A regularizer from a name (``"l1"``, ``"l2"``, ``"l1l2"``, with Keras's defaults), a Regularizer (returned
    as it is) or None (no regularizer)."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        try:
            return REGULARIZERS[identifier.lower()]()
        except KeyError:
            raise ValueError(
                f"unknown regularizer {identifier!r}; known regularizers: {', '.join(REGULARIZERS)}"
            ) from None
    raise TypeError(
        f"a regularizer must be a name ({', '.join(REGULARIZERS)}), a minicnn.regularizers.Regularizer "
        f"or None, got {identifier!r}"
    )
