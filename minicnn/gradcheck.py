"""Numerical gradient checks: is a hand-written backward pass right?

The analytic gradient from ``backward`` is compared with central differences in float64::

    dL/dθ_i ≈ (L(θ + h e_i) - L(θ - h e_i)) / (2h)                    per element ("elementwise")
    <∇L, v> ≈ (L(θ + h v) - L(θ - h v)) / (2h)                         along a random direction v ("direction")

with the relative error ``|a - n| / max(1e-8, |a| + |n|)``. In float64 with h = 1e-6 the rounding error of
a central difference is about 1e-16 * |L| / h ≈ 1e-10 * |L| and the truncation error about h² = 1e-12, so
a correct backward pass gives relative errors near 1e-8 or below; 1e-6 is a comfortable bound.

For a single layer, the scalar checked is ``L = sum(layer.forward(x) * R)`` with a fixed random ``R``
(so ``dL/dy = R``); for a model, it is the compiled loss on ``(x, y)``.

Example:
    >>> import numpy as np
    >>> from minicnn import layers
    >>> from minicnn.gradcheck import check_layer
    >>> report = check_layer(layers.Conv2D(2, (3, 3), strides=2, padding="same"), (2, 7, 6, 3))
    >>> report.passed
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backend import backend_of, get_backend

DEFAULT_TOLERANCE = 1e-6


def relative_error(analytic, numeric, floor: float = 1e-8):
    """Elementwise |a - n| / max(floor, |a| + |n|)."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    return np.abs(analytic - numeric) / np.maximum(floor, np.abs(analytic) + np.abs(numeric))


@dataclass
class GradcheckReport:
    """The largest relative error per checked tensor, and whether all are within ``tolerance``."""

    tolerance: float
    mode: str
    errors: dict = field(default_factory=dict)  # tensor name -> max relative error
    worst_index: dict = field(default_factory=dict)  # tensor name -> index of that error (elementwise mode)

    @property
    def passed(self) -> bool:
        return all(err <= self.tolerance for err in self.errors.values())

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    def __str__(self):
        lines = [f"gradient check ({self.mode}), tolerance {self.tolerance:.0e}:"]
        for name, err in self.errors.items():
            where = f" at {self.worst_index[name]}" if name in self.worst_index else ""
            lines.append(f"  {name:<28} max rel. error {err:.2e}{where}  {'ok' if err <= self.tolerance else 'FAIL'}")
        return "\n".join(lines)

    def assert_ok(self):
        """Raise AssertionError naming every tensor whose error exceeds the tolerance."""
        if not self.passed:
            raise AssertionError(str(self))
        return self


def _fix_randomness(layer):
    """Re-seed a layer's random stream (dropout) so that every forward pass uses the same mask."""
    if hasattr(layer, "rng"):
        layer.rng = layer.backend.make_rng(12345)


def _central_differences(loss_fn, arrays, names, mode, h, rng, max_checks):
    """Numerical derivatives of loss_fn() w.r.t. the (host or backend) float64 arrays, perturbed in place."""
    if mode == "direction":
        directions = [rng.standard_normal(a.shape) for a in arrays]
        for a, d in zip(arrays, directions):
            a += _like(a, d) * h
        plus = loss_fn()
        for a, d in zip(arrays, directions):
            a -= _like(a, d) * (2 * h)
        minus = loss_fn()
        for a, d in zip(arrays, directions):
            a += _like(a, d) * h
        return directions, (plus - minus) / (2 * h)
    numeric = {}
    for name, a in zip(names, arrays):
        size = int(np.prod(a.shape))
        flat_indices = (
            np.arange(size) if max_checks is None or size <= max_checks else rng.choice(size, max_checks, replace=False)
        )
        values = {}
        for flat in flat_indices:
            idx = np.unravel_index(flat, a.shape)
            old = float(a[idx])
            a[idx] = old + h
            plus = loss_fn()
            a[idx] = old - h
            minus = loss_fn()
            a[idx] = old
            values[idx] = (plus - minus) / (2 * h)
        numeric[name] = values
    return None, numeric


def _like(a, host_array):
    """host_array moved to wherever ``a`` lives (NumPy or CuPy)."""
    return backend_of(a).asarray(host_array)


def _compare(report, names, analytic, numeric, directions, numeric_dir, floor=1e-8):
    if report.mode == "direction":
        dot = sum(float(np.sum(np.asarray(g, np.float64) * d)) for g, d in zip(analytic, directions))
        report.errors["all tensors along a random direction"] = float(relative_error(dot, numeric_dir))
        return report
    for name, g in zip(names, analytic):
        values = numeric[name]
        idxs = list(values)
        a = np.array([g[i] for i in idxs])
        n = np.array([values[i] for i in idxs])
        err = relative_error(a, n, floor)
        worst = int(np.argmax(err))
        report.errors[name] = float(err[worst])
        report.worst_index[name] = tuple(int(i) for i in idxs[worst])
    return report


def check_layer(
    layer,
    input_shape,
    mode: str = "elementwise",
    seed: int = 0,
    h: float = 1e-6,
    tolerance: float = DEFAULT_TOLERANCE,
    backend=None,
    training: bool = False,
    x=None,
    max_checks: int | None = None,
    floor: float = 1e-8,
) -> GradcheckReport:
    """Check a layer's input gradient and each parameter gradient by central differences in float64.

    Args:
        layer: an unbuilt layer (it is built here in float64 for ``input_shape[1:]``) or a float64-built one.
        input_shape: the shape of the input batch, ``(N, ...)``.
        mode: ``"elementwise"`` (every element, or ``max_checks`` sampled ones) or ``"direction"``.
        x: the input (default: standard normal, shifted away from 0 so that ReLU kinks are not hit).
        training: pass ``training=True`` to forward (dropout then uses one fixed mask).
        floor: the smallest denominator of the relative error (see :func:`check_model`).
    Returns:
        a :class:`GradcheckReport`; call ``.assert_ok()`` to raise on failure.
    """
    backend = get_backend(backend if backend is not None else "numpy")
    rng = np.random.default_rng(seed)
    if not layer.built or layer.dtype != np.float64:
        layer.build(tuple(input_shape[1:]), backend, np.float64, np.random.default_rng(seed + 1))
    x_host = rng.standard_normal(input_shape) if x is None else np.asarray(x, np.float64)
    xb = backend.asarray(x_host.astype(np.float64))
    out_shape = (input_shape[0],) + tuple(layer.output_shape)
    r = backend.asarray(rng.standard_normal(out_shape))

    def loss_fn():
        _fix_randomness(layer)
        return float((layer.forward(xb, training=training) * r).sum())

    loss_fn()
    _fix_randomness(layer)
    layer.forward(xb, training=training)
    dx = layer.backward(r.copy())
    keys = list(layer.grads)  # the weights with a gradient (declared trainable)
    names = ["input"] + [f"{layer.name or type(layer).__name__}.{k}" for k in keys]
    analytic = [backend.to_numpy(dx)] + [backend.to_numpy(layer.grads[k]) for k in keys]
    arrays = [xb] + [layer.params[k] for k in keys]
    directions, numeric = _central_differences(loss_fn, arrays, names, mode, h, rng, max_checks)
    return _compare(GradcheckReport(tolerance, mode), names, analytic, numeric, directions, numeric, floor)


def check_model(
    model,
    x,
    y,
    mode: str = "elementwise",
    seed: int = 0,
    h: float = 1e-6,
    tolerance: float = DEFAULT_TOLERANCE,
    max_checks: int | None = 20,
    check_input: bool = True,
    floor: float = 1e-8,
) -> GradcheckReport:
    """Check every parameter gradient of a float64 model (and the input gradient) on ``(x, y)``.

    Dropout is off (inference mode), as in Keras's ``compute_gradients(training=False)``. Elementwise mode
    samples ``max_checks`` elements per tensor (None: all of them).

    ``floor`` is the smallest denominator of the relative error. A central difference of a loss near 2.3
    carries an absolute rounding noise of about 1e-16 * 2.3 / h per operation, summed over many operations:
    up to about 2.5e-10 for h = 1e-6 (measured on the tutorial model). Deep in a model some gradient entries are
    1e5 times smaller than the largest (3e-7 against 6e-2 in the tutorial model), and at that size the noise
    alone is a relative error of 1e-4 or more. Raise ``floor`` (1e-3 does) to judge such entries by their
    absolute error instead.
    """
    if model.dtype != np.float64:
        raise ValueError("gradient checks need a float64 model: Sequential(layers, dtype='float64')")
    from . import losses

    if model.loss is None:
        model.loss = losses.CategoricalCrossentropy()
    backend = model.backend
    rng = np.random.default_rng(seed)
    xb = model.prepare_inputs(x)
    yb = model.prepare_targets(y, xb.shape[0])

    def loss_fn():  # what forward_backward differentiates: the data loss plus the weight penalties, if any
        loss, _ = model.add_penalties(model.loss.forward(backend.xp, model.forward(xb, training=False), yb))
        return float(loss)

    _, _, _, dx = model.forward_backward(xb, yb, training=False)
    grads = [backend.to_numpy(g) for g in model.gradients]
    names = [f"{layer.name}.{k}" for layer in model.layers for k in layer.weight_names(trainable=True)]
    arrays = list(model.trainable_weights)
    if check_input:
        names, arrays, grads = ["input"] + names, [xb] + arrays, [backend.to_numpy(dx)] + grads
    directions, numeric = _central_differences(loss_fn, arrays, names, mode, h, rng, max_checks)
    return _compare(GradcheckReport(tolerance, mode), names, grads, numeric, directions, numeric, floor)


def numerical_gradient(loss_fn, array, h: float = 1e-6) -> np.ndarray:
    """dL/dA by central differences, one element at a time: ``(L(A + h e_i) - L(A - h e_i)) / (2h)``.

    ``array``: a float64 array that ``loss_fn()`` reads; it is perturbed in place and restored. Returns a host array
    of ``array``'s shape. Costs two calls of ``loss_fn`` per element: keep ``array`` small."""
    names = ["array"]
    _, numeric = _central_differences(loss_fn, [array], names, "elementwise", h, np.random.default_rng(0), None)
    grad = np.zeros(array.shape, np.float64)
    for idx, value in numeric["array"].items():
        grad[idx] = value
    return grad
