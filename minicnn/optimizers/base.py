"""The Optimizer base class: what every optimizer has in common (state per weight, the gate, checkpoints)."""

from __future__ import annotations

import copy
import math
import weakref

from ..backend import backend_of


def positive_number(value, name: str) -> float:
    """``float(value)`` when it is a finite number > 0, else a ValueError naming ``name`` (a hyperparameter)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, (bool, str)) or not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return number


class Optimizer:
    """Common bookkeeping: state is created on the first update, in the order of ``params``.

    A new optimizer is one file: a subclass that names its state (``slot_names``), creates it in :meth:`build` and
    writes one weight's update in :meth:`update_rule` against ``backend.xp``. A backend may also provide a fused
    kernel for it (``rule`` names it; see ``Backend.fused_update``), tested equal to the rule.
    """

    rule: str | None = None  # the name under which a backend may offer a fused kernel of this update
    slot_names: tuple = ()  # the per-weight state lists, e.g. ("accumulated_grad", "accumulated_delta")

    def __init__(self, learning_rate: float):
        self.learning_rate = positive_number(learning_rate, "learning_rate")
        self.iterations = 0
        self._built_for = None
        self._owner = None  # the model this optimizer's state belongs to (see for_model)

    def for_model(self, model) -> Optimizer:
        """This optimizer, for ``model`` (``compile`` calls it): the first model compiled with it owns it; another
        model gets a fresh copy with the same settings, so that two models never share (and mix) their state."""
        owner = self._owner() if getattr(self, "_owner", None) is not None else None
        if owner is not None and owner is not model:
            twin = copy.copy(self)
            for name in self.slot_names:
                twin.__dict__.pop(name, None)
            twin.iterations, twin._built_for, twin._owner = 0, None, None
            return twin.for_model(model)
        self._owner = weakref.ref(model)
        return self

    def build(self, params, backend=None):
        """Create the state for ``params`` (called by the first ``apply``): zeros shaped like each weight."""
        self._built_for = [p.shape for p in params]
        xp = (backend or backend_of(params[0] if params else None)).xp
        for name in self.slot_names:
            setattr(self, name, [xp.zeros_like(p) for p in params])

    def apply(self, params, grads, gate=None, backend=None):
        """One update: for each k, params[k] is changed in place from grads[k].

        ``gate``: a 0-d boolean array; when it is False nothing changes (the NaN guard's flag). A fused kernel on a
        backend that ``gates_on_device`` reads it there; otherwise it is read on the host. ``backend``: whose
        arrays and kernels (the model passes its own; by default, the backend where the arrays live)."""
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} parameters but {len(grads)} gradients")
        backend = backend or backend_of(params[0] if params else None)
        if self._built_for != [p.shape for p in params]:
            self.build(params, backend)
        kernel = backend.fused_update(self.rule) if self.rule else None
        if gate is not None and not (kernel is not None and backend.gates_on_device):
            if not bool(gate):
                return
            gate = None
        hyper = self.hyperparameters() if kernel is not None else ()  # the same numbers for every weight
        for k, (p, g) in enumerate(zip(params, grads)):
            slots = [getattr(self, name)[k] for name in self.slot_names]
            if kernel is None or not kernel(p, g, *slots, *hyper, gate):
                self.update_rule(backend.xp, p, g, *slots)
        self.iterations += 1

    def hyperparameters(self) -> tuple:
        """The numbers a fused kernel takes after the weight, its gradient and its state slots."""
        return (self.learning_rate,)

    def update_rule(self, xp, param, grad, *slots):
        """One weight's update, in place (``slots``: its state arrays in ``slot_names`` order)."""
        raise NotImplementedError

    def get_state(self) -> dict:
        """The optimizer's state as host-side NumPy arrays (for checkpoints): iterations and each slot list."""
        state = {"iterations": self.iterations}
        for name in self.slot_names:
            state[name] = [backend_of(a).to_numpy(a) for a in getattr(self, name, [])]
        return state

    def set_state(self, state: dict, params) -> None:
        """Restore :meth:`get_state`'s result for ``params`` (same order and shapes)."""
        self.build(params)
        self.iterations = int(state["iterations"])
        for name in self.slot_names:
            values = state.get(name, [])
            if not values:
                continue
            if len(values) != len(params):
                raise ValueError(f"optimizer state {name!r} holds {len(values)} arrays, the model has {len(params)}")
            for slot, value, p in zip(getattr(self, name), values, params):
                if tuple(value.shape) != tuple(p.shape):
                    raise ValueError(
                        f"optimizer state {name!r}: shape {tuple(value.shape)} where the parameter has {tuple(p.shape)}"
                    )
                slot[...] = backend_of(p).asarray(value)

    def get_config(self) -> dict:
        return {"name": type(self).__name__, "learning_rate": self.learning_rate}
