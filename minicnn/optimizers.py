"""Optimizers. Each sees only (parameter, gradient) pairs and updates the parameters in place.

State is kept per parameter, in the order of the parameter list, and can be read directly
(``opt.accumulated_grad[k]`` ...). ``opt.iterations`` counts the updates.
"""

from __future__ import annotations

from .backend import array_module, backend_of


class Optimizer:
    """Common bookkeeping: state is created on the first update, in the order of ``params``."""

    def __init__(self, learning_rate: float):
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self._built_for = None

    def build(self, params):
        """Create the state for ``params`` (called by the first ``apply``)."""
        self._built_for = [p.shape for p in params]

    def apply(self, params, grads, gate=None, backend=None):
        """One update: for each k, params[k] is changed in place from grads[k].

        ``gate``: a 0-d boolean array; when it is False nothing changes (the NaN guard's flag). Optimizers with a
        fused kernel read it on the device; the others read it on the host. ``backend``: whose kernels do the
        arithmetic (the model passes its own; by default, the backend where the arrays live)."""
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} parameters but {len(grads)} gradients")
        if self._built_for != [p.shape for p in params]:
            self.build(params)
        if gate is not None and not self.gates_on_device and not bool(gate):
            return
        for k, (p, g) in enumerate(zip(params, grads)):
            self.update(k, p, g, gate, backend or backend_of(p))
        self.iterations += 1

    gates_on_device = False

    def update(self, k, param, grad, gate=None, backend=None):
        raise NotImplementedError

    slot_names: tuple = ()   # the per-parameter state lists, e.g. ("accumulated_grad", "accumulated_delta")

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
                    raise ValueError(f"optimizer state {name!r}: shape {tuple(value.shape)} where the parameter "
                                     f"has {tuple(p.shape)}")
                slot[...] = array_module(p).asarray(value)

    def get_config(self) -> dict:
        return {"name": type(self).__name__, "learning_rate": self.learning_rate}


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012) with exactly Keras's update rule, for each parameter ``x`` and gradient ``g``::

        E[g^2]  <- rho * E[g^2] + (1 - rho) * g^2
        delta    = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g       (old E[dx^2], new E[g^2])
        E[dx^2] <- rho * E[dx^2] + (1 - rho) * delta^2
        x       <- x - learning_rate * delta

    The default ``learning_rate=1.0`` is the R keras tutorial's (and the original paper's); Keras 3 defaults
    to 0.001, which trains about 1000 times slower on the tutorial's model.

    State: ``accumulated_grad[k]`` = E[g^2], ``accumulated_delta[k]`` = E[dx^2].
    """

    slot_names = ("accumulated_grad", "accumulated_delta")

    def __init__(self, learning_rate: float = 1.0, rho: float = 0.95, epsilon: float = 1e-7):
        super().__init__(learning_rate)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}")
        self.rho, self.epsilon = float(rho), float(epsilon)

    def build(self, params):
        super().build(params)
        self.accumulated_grad = [array_module(p).zeros_like(p) for p in params]
        self.accumulated_delta = [array_module(p).zeros_like(p) for p in params]

    gates_on_device = True

    def update(self, k, param, grad, gate=None, backend=None):
        # the arithmetic is the backend's (minicnn/backend/numpy_ref.py; one fused kernel with Numba and on the GPU)
        (backend or backend_of(param)).adadelta_update(param, grad, self.accumulated_grad[k], self.accumulated_delta[k],
                                          self.learning_rate, self.rho, self.epsilon, gate)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


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

    def build(self, params):
        super().build(params)
        self.velocity = [array_module(p).zeros_like(p) for p in params]

    def update(self, k, param, grad, gate=None, backend=None):
        if self.momentum == 0.0:
            param -= self.learning_rate * grad
            return
        v = self.velocity[k]
        v *= self.momentum
        v -= self.learning_rate * grad
        if self.nesterov:
            param += self.momentum * v - self.learning_rate * grad
        else:
            param += v

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


OPTIMIZERS = {"adadelta": Adadelta, "sgd": SGD}


def get(optimizer):
    """An optimizer from its name (``"adadelta"``, ``"sgd"``, with default settings) or the object itself."""
    if isinstance(optimizer, str):
        try:
            return OPTIMIZERS[optimizer.lower()]()
        except KeyError:
            raise ValueError(f"unknown optimizer {optimizer!r}; known optimizers: {', '.join(OPTIMIZERS)}") from None
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or an Optimizer, got {optimizer!r}")
    return optimizer
