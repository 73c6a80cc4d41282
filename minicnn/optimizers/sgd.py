"""Stochastic gradient descent, with optional (Nesterov) momentum."""

from __future__ import annotations

from .base import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, Keras's rule::

        v <- momentum * v - learning_rate * g
        x <- x + v                                  (plain momentum)
        x <- x + momentum * v - learning_rate * g   (nesterov=True)

    State: ``velocity[k]``.
    """

    slot_names = ("velocity",)

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(learning_rate)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def update_rule(self, xp, param, grad, velocity):
        if self.momentum == 0.0:
            param -= self.learning_rate * grad
            return
        velocity *= self.momentum
        velocity -= self.learning_rate * grad
        if self.nesterov:
            param += self.momentum * velocity - self.learning_rate * grad
        else:
            param += velocity

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
