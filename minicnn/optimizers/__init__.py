"""Optimizers, one file each: the update rule in NumPy terms (``backend.xp``), with an optional fused kernel per
backend (``backend.fused_update(rule)``). Each sees only (weight, gradient) pairs, the model's trainable weights,
and updates the weights in place.

State is kept per weight, in the order of the weight list, and can be read directly (``opt.accumulated_grad[k]``
...). ``opt.iterations`` counts the updates.
"""

from __future__ import annotations

from .adadelta import Adadelta
from .adam import Adam
from .adamw import AdamW
from .base import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

OPTIMIZERS = {"adadelta": Adadelta, "sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}

__all__ = ["Optimizer", "Adadelta", "SGD", "Adam", "AdamW", "RMSprop", "OPTIMIZERS", "get"]


def get(optimizer):
    """An optimizer from its name (``"adadelta"``, ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, with default
    settings) or the object itself."""
    if isinstance(optimizer, str):
        try:
            return OPTIMIZERS[optimizer.lower()]()
        except KeyError:
            raise ValueError(f"unknown optimizer {optimizer!r}; known optimizers: {', '.join(OPTIMIZERS)}") from None
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or an Optimizer, got {optimizer!r}")
    return optimizer
