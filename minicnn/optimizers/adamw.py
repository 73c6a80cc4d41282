"""AdamW (Loshchilov and Hutter, 2019): Adam with decoupled weight decay, Keras 3's rule."""

from __future__ import annotations

import math

from .adam import Adam


class AdamW(Adam):
    """Adam with decoupled weight decay, Keras 3's rule: before each Adam step (see :class:`Adam`), every weight
    decays by the plain learning rate (not the bias-corrected ``lr_t``)::

        x <- x - x * weight_decay * learning_rate
        then Adam's step on x with the gradient g (computed before the decay)

    The decay does not enter the gradient, so ``m`` and ``v`` never see it (that is what "decoupled" means).
    Every trainable weight decays, biases included (Keras's default, without ``exclude_from_weight_decay``).
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
    ):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad)
        if (
            isinstance(weight_decay, bool)
            or not isinstance(weight_decay, (int, float))
            or not 0 <= weight_decay < math.inf
        ):
            raise ValueError(f"weight_decay must be a non-negative finite float, got {weight_decay!r}")
        self.weight_decay = float(weight_decay)

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay}
