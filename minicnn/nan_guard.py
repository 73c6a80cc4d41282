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
        self.step_on_device = xp.full((), first_step, dtype=np.int64)  # the step index a CUDA graph replay reads

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


class NonFiniteState(NonFiniteLoss):
    """The weights or the optimizer's state hold a NaN or an infinity (found by :class:`StateGuard`), although the
    loss may still look finite (e.g. Adadelta's accumulators at infinity freeze their weights silently)."""

    def __init__(self, what: str):
        ArithmeticError.__init__(self, f"{what} became NaN or infinite")
        self.value, self.step = float("nan"), None


class StateGuard:
    """The NaN guard's second half: every ``every`` steps (and at each epoch's end) it checks that every weight and
    every optimizer state array is finite, and keeps a copy of that state (on the device: about three copies of the
    weights for Adadelta, a few MB for the tutorial; the checks and copies cost well under 1% of a step). When
    training stops on a non-finite value, :meth:`restore` puts the last finite state back."""

    def __init__(self, model, every: int = 10):
        self.model, self.every = model, max(1, int(every))
        self.kept_step = 0
        self.kept = self._copy()

    def _groups(self):
        optimizer = self.model.optimizer
        groups = [("the weights", list(self.model.weights))]
        for name in getattr(optimizer, "slot_names", ()):
            groups.append((f"the optimizer state {name!r}", list(getattr(optimizer, name, None) or [])))
        return groups

    def _copy(self, into=None):
        """The state's arrays copied, into the buffers of an earlier copy when they still fit (no allocation in
        the loop; a slot list grows once, at the optimizer's first update), and its iteration count."""
        groups = [arrays for _, arrays in self._groups()]
        iterations = getattr(self.model.optimizer, "iterations", 0)
        if into is not None and [len(a) for a in into] == [len(a) for a in groups]:
            for kept, live in zip(into, groups):
                for dst, src in zip(kept, live):
                    dst[...] = src
            return into, iterations
        return [[a.copy() for a in arrays] for arrays in groups], iterations

    def first_bad(self) -> str | None:
        """The name of the first group holding a NaN or an infinity, or None when all is finite (one read of the
        device per group, not one per array)."""
        xp = self.model.backend.xp
        for what, arrays in self._groups():
            if arrays and not bool(xp.stack([xp.isfinite(a).all() for a in arrays]).all()):
                return what
        return None

    def after_step(self, done: int, steps: int, global_step: int) -> None:
        """After step ``done`` of ``steps`` in the epoch (``global_step`` steps in all): every ``every`` steps and
        at the epoch's end, check the state (a :class:`NonFiniteState` when it is not finite) and keep it."""
        if done % self.every and done != steps:
            return
        bad = self.first_bad()
        if bad is not None:
            raise NonFiniteState(bad)
        self.kept, self.kept_step = self._copy(into=self.kept[0]), global_step

    def restore(self) -> int | None:
        """Put back the last finite state when the current one is not finite; returns the step it is from (None
        when nothing needed restoring)."""
        if self.first_bad() is None:
            return None
        arrays, iterations = self.kept
        for (_, live), saved in zip(self._groups(), arrays):
            for k, a in enumerate(live):  # no saved slot: the optimizer had not made its first update then
                a[...] = saved[k] if k < len(saved) else 0
        self.model.optimizer.iterations = iterations
        return self.kept_step
