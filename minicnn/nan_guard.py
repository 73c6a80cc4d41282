"""The NaN guard: training stops at the first step whose loss is NaN or infinite, before that step's update, so
the model keeps the weights of the last good step."""

from __future__ import annotations

import numpy as np


class NonFiniteLoss(ArithmeticError):
    """The loss of a training step was NaN or infinite (raised before that step's update).

    ``step``: the global index of that step when it was found later (deferred guard), else None."""

    def __init__(self, value: float, step: int | None = None):
        super().__init__(f"the loss became {value}")
        self.value, self.step = value, step


class DeferredNanGuard:
    """The NaN guard without a synchronisation per step, for GPUs: on the device it keeps ``ok`` (False from the
    first step whose loss is not finite on) and that step's index; ``ok`` gates every update, so the weights stay
    those before the bad step. ``check()`` reads the flag on the host (fit does so every few steps and at the end
    of each epoch) and raises :class:`NonFiniteLoss` naming the step."""

    def __init__(self, xp, first_step: int = 0):
        self.xp = xp
        self.ok = xp.ones((), dtype=bool)
        self.bad_step = xp.full((), -1, dtype=np.int64)
        self.bad_loss = xp.zeros((), dtype=np.float64)
        self.step = first_step
        self.step_on_device = xp.full((), first_step, dtype=np.int64)   # the step index a CUDA graph replay reads

    def observe(self, loss):
        """Note one step's loss (on the device); returns the gate for its update."""
        xp = self.xp
        finite = xp.isfinite(loss)
        first_bad = self.ok & ~finite
        self.bad_step[...] = xp.where(first_bad, self.step_on_device, self.bad_step)
        self.bad_loss[...] = xp.where(first_bad, loss, self.bad_loss)
        self.ok &= finite
        self.step_on_device += 1
        self.step += 1
        return self.ok

    def check(self):
        if not bool(self.ok):
            raise NonFiniteLoss(float(self.bad_loss), int(self.bad_step))
