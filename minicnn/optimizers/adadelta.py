"""Adadelta (Zeiler, 2012), with exactly Keras's update rule."""

from __future__ import annotations

from .base import Optimizer, positive_number


class Adadelta(Optimizer):
    """Adadelta with Keras's update rule, for each weight ``x`` and gradient ``g``::

        E[g^2]  <- rho * E[g^2] + (1 - rho) * g^2
        delta    = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g       (old E[dx^2], new E[g^2])
        E[dx^2] <- rho * E[dx^2] + (1 - rho) * delta^2
        x       <- x - learning_rate * delta

    The default ``learning_rate=1.0`` is the R keras tutorial's (and the original paper's); Keras 3 defaults
    to 0.001, which trains about 1000 times slower on the tutorial's model.

    State: ``accumulated_grad[k]`` = E[g^2], ``accumulated_delta[k]`` = E[dx^2]. The Numba and CuPy backends run
    the rule as one fused kernel (``backend.fused_update("adadelta")``), tested equal to :meth:`update_rule`.
    """

    rule = "adadelta"
    slot_names = ("accumulated_grad", "accumulated_delta")

    def __init__(self, learning_rate: float = 1.0, rho: float = 0.95, epsilon: float = 1e-7):
        super().__init__(learning_rate)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        epsilon = positive_number(epsilon, "epsilon")
        self.rho, self.epsilon = float(rho), float(epsilon)

    def hyperparameters(self):
        return (self.learning_rate, self.rho, self.epsilon)

    def update_rule(self, xp, param, grad, accumulated_grad, accumulated_delta):
        rho, epsilon = self.rho, self.epsilon
        accumulated_grad *= rho
        accumulated_grad += (1 - rho) * (grad * grad)
        delta = xp.sqrt(accumulated_delta + epsilon)
        delta /= xp.sqrt(accumulated_grad + epsilon)
        delta *= grad
        accumulated_delta *= rho
        accumulated_delta += (1 - rho) * (delta * delta)
        delta *= self.learning_rate
        param -= delta

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
