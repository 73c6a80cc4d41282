"""RMSprop (Hinton, 2012), with exactly Keras 3's update rule (momentum and the centered variant)."""

from __future__ import annotations

from .base import Optimizer, positive_number


class RMSprop(Optimizer):
    """RMSprop with Keras 3's update rule, for each weight ``x`` and gradient ``g``::

        v     <- rho * v + (1 - rho) * g^2
        a     <- rho * a + (1 - rho) * g                      (centered=True only)
        D      = v + epsilon            or  v - a^2 + epsilon (centered: an estimate of the variance of g)
        step   = learning_rate * g / sqrt(D)                  (epsilon inside the root, unlike Adam)
        x     <- x - step                                     (momentum = 0)
        mom   <- momentum * mom + step;  x <- x - mom         (momentum > 0)

    State (Keras's names): ``velocities[k]`` = v, ``momentums[k]`` = mom (momentum > 0 only),
    ``average_gradients[k]`` = a (centered only). No fused kernel: the plain rule runs on every backend.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
    ):
        super().__init__(learning_rate)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        epsilon = positive_number(epsilon, "epsilon")
        if not isinstance(centered, bool):
            raise TypeError(f"centered must be True or False, got {centered!r}")
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), centered
        self.slot_names = (
            ("velocities",) + (("momentums",) if momentum > 0 else ()) + (("average_gradients",) if centered else ())
        )

    def update_rule(self, xp, param, grad, velocities, *more):
        t = param.dtype.type
        rho, one_minus_rho, epsilon = t(self.rho), t(1.0 - self.rho), t(self.epsilon)
        momentums = more[0] if self.momentum > 0 else None
        average_gradients = more[-1] if self.centered else None
        velocities *= rho
        velocities += one_minus_rho * (grad * grad)
        if average_gradients is not None:
            average_gradients *= rho
            average_gradients += one_minus_rho * grad
            denominator = velocities - average_gradients * average_gradients + epsilon
        else:
            denominator = velocities + epsilon
        step = t(self.learning_rate) * grad / xp.sqrt(denominator)
        if momentums is None:
            param -= step
            return
        momentums *= t(self.momentum)
        momentums += step
        param -= momentums

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }
