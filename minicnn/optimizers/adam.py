"""Adam (Kingma and Ba, 2015), with exactly Keras 3's update rule (and AMSGrad)."""

from __future__ import annotations

import math

from .base import Optimizer, positive_number


class Adam(Optimizer):
    """Adam with Keras 3's update rule, for each weight ``x`` and gradient ``g`` at step ``t = 1, 2, ...``::

        lr_t = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)     (the bias correction, in the step size)
        m   <- m + (g - m) * (1 - beta_1)                                (= beta_1 * m + (1 - beta_1) * g)
        v   <- v + (g^2 - v) * (1 - beta_2)                              (= beta_2 * v + (1 - beta_2) * g^2)
        v_hat <- max(v_hat, v)                     (amsgrad=True only; then v_hat replaces v below)
        x   <- x - m * lr_t / (sqrt(v) + epsilon)                       (epsilon outside the root)

    ``lr_t`` is computed once per step on the host in float64 (from ``learning_rate`` as it is at that step, so
    ``optimizer.learning_rate = x`` between steps takes effect at the next one), then used in the weights' dtype
    like the other numbers. State: ``momentums[k]`` = m, ``velocities[k]`` = v and, with ``amsgrad``,
    ``velocity_hats[k]`` = v_hat (Keras's names). The Numba and CuPy backends run the rule as one fused kernel
    (``backend.fused_update("adam")``, ``"adam_amsgrad"``), tested equal to :meth:`update_rule`.
    """

    rule = "adam"
    slot_names = ("momentums", "velocities")
    weight_decay = 0.0  # AdamW's decoupled decay; none here

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
    ):
        super().__init__(learning_rate)
        for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        epsilon = positive_number(epsilon, "epsilon")
        if not isinstance(amsgrad, bool):
            raise TypeError(f"amsgrad must be True or False, got {amsgrad!r}")
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), amsgrad
        if amsgrad:
            self.rule = "adam_amsgrad"
            self.slot_names = ("momentums", "velocities", "velocity_hats")

    def step_size(self) -> float:
        """``lr_t = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` for the coming step ``t``, in float64."""
        t = self.iterations + 1
        return self.learning_rate * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)

    def hyperparameters(self):
        """What the fused kernels take after the arrays: (learning_rate, lr_t, 1 - beta_1, 1 - beta_2, epsilon,
        weight_decay), each converted to the weights' dtype by the kernel's caller."""
        return (
            self.learning_rate,
            self.step_size(),
            1.0 - self.beta_1,
            1.0 - self.beta_2,
            self.epsilon,
            self.weight_decay,
        )

    def update_rule(self, xp, param, grad, momentums, velocities, velocity_hats=None):
        t = param.dtype.type  # every number in the weights' dtype, as the fused kernels take them
        learning_rate, lr_t, one_minus_beta_1, one_minus_beta_2, epsilon, weight_decay = map(t, self.hyperparameters())
        if weight_decay != 0:  # AdamW: x <- x - x * weight_decay * learning_rate
            param -= param * weight_decay * learning_rate
        momentums += (grad - momentums) * one_minus_beta_1
        velocities += (grad * grad - velocities) * one_minus_beta_2
        v = velocities
        if velocity_hats is not None:
            v = xp.maximum(velocity_hats, velocities, out=velocity_hats)
        param -= momentums * lr_t / (xp.sqrt(v) + epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }
