"""Where arrays live and which kernels run: the backend seam.

Layer code is written once against ``backend.xp`` (NumPy or CuPy) and a handful of named kernels:

============================  ==========================================================
``im2col(x, win, out=None)``  ``(N, H, W, C) -> (N*OH*OW, KH*KW*C)`` patch matrix
``col2im(cols, x_shape, win)`` its adjoint, back to ``(N, H, W, C)``
``maxpool_forward(x, win)``   ``y, argmax`` (index of the first maximum in each window)
``maxpool_backward(dy, argmax, x_shape, win)``  routes ``dy`` to those maxima
``avgpool_forward(x, win)``   each window's mean over its real cells (padding not counted)
``avgpool_backward(dy, x_shape, win)``  spreads ``dy / count`` over each window's cells
``bias_relu(z, b)``           in place ``z <- max(z + b, 0)``
``relu_backward(dy, y)``      ``dy * [y > 0]``
``matmul(a, b, out=None)``    ``a @ b`` (every matrix product of a layer goes through it)
``weight_gradient(cols, dz, out)``  ``cols^T @ dz`` (a layer's kernel gradient)
``bias_gradient(dz, out)``    the sum of ``dz`` over rows (a layer's bias gradient)
``dropout_mask(u, rate)``     ``[u >= rate] / (1 - rate)``
``dropout_apply(x, u, rate)`` ``(x * mask, mask)``
``softmax_crossentropy_step`` loss, accuracy and (p - y)/N of a softmax output in one pass
``batchnorm_forward_training(x2d, gamma, beta, eps)``  ``y, xhat, mean, var, inv_std`` per column (batch stats)
``batchnorm_forward_inference(x2d, mean, var, gamma, beta, eps)``  ``y, xhat, inv_std`` with given statistics
``batchnorm_backward(dy2d, xhat, gamma, inv_std, training)``  ``dx, dgamma, dbeta``
============================  ==========================================================

Where a backend fuses several steps, it says so and offers one call in their place (each tested equal to the plain
composition in :mod:`numpy_ref`):

==================================================  ========================================================
``fuses_conv2d``                                    True when the two calls below exist (Numba)
``conv2d_fused_forward(x, w, b, win, relu)``        ``Z = im2col(x) @ w + b`` (+ ReLU), ``(N*OH*OW, F)``
``conv2d_fused_backward(x, dz, w, win, dw, db)``    dW, db into ``dw``, ``db``; returns ``col2im(dz @ w^T)``
``fused_update(rule)``                              a fused optimizer step (``"adadelta"``), or None
``gates_on_device``                                 whether that step reads its ``gate`` on the device (CuPy)
==================================================  ========================================================

Every kernel that returns an array also takes ``out=`` (``argmax_out=`` too for max-pooling): a buffer of the
right shape that it fills instead of allocating. Layers inside a model pass their own reused buffers, so that a
training step allocates no large array (fresh large arrays cost page faults; see docs/performance.md,
"Reused buffers").

Backends: ``"numpy"`` (the plain reference), ``"numba"`` (parallel CPU kernels) and ``"cupy"`` (NVIDIA GPU).
Choose one with :func:`set_backend`, the ``MINICNN_BACKEND`` environment variable, or the ``backend=``
argument of :class:`minicnn.Sequential`.
"""

from __future__ import annotations

import os

from .base import Backend
from .geometry import Window, make_window

__all__ = [
    "Backend",
    "Window",
    "make_window",
    "get_backend",
    "set_backend",
    "available_backends",
    "default_backend_name",
    "BACKEND_NAMES",
    "backend_of",
]

BACKEND_NAMES = ("numpy", "numba", "cupy")


def backend_of(a) -> Backend:
    """The backend whose memory holds array ``a`` (cupy for a CuPy array, else the NumPy reference)."""
    return get_backend("cupy") if type(a).__module__.startswith("cupy") else get_backend("numpy")


_instances: dict[str, Backend] = {}
_default: list[str] = []  # the name chosen by set_backend(); empty means "from the environment"


def _create(name: str) -> Backend:
    if name == "numpy":
        return Backend()
    if name == "numba":
        try:
            from .numba import NumbaBackend
        except ImportError as err:
            raise ImportError(
                f"the 'numba' backend needs numba, scipy and threadpoolctl, which "
                f"'pip install minicnn' installs ({err})"
            ) from err
        return NumbaBackend()
    if name == "cupy":
        try:
            from .cupy_gpu import CupyBackend
        except ImportError as err:
            raise ImportError(
                str(err)
                if "minicnn[gpu]" in str(err)
                else "the 'cupy' backend needs CuPy and an NVIDIA GPU: pip install 'minicnn[gpu]' "
                f"(cupy-cuda13x; cupy-cuda12x for CUDA 12 drivers) ({err})"
            ) from err
        return CupyBackend()
    raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(BACKEND_NAMES)}")


def default_backend_name() -> str:
    """The backend used when none is named: set_backend()'s, else $MINICNN_BACKEND, else numba (or numpy)."""
    if _default:
        return _default[0]
    env = os.environ.get("MINICNN_BACKEND", "").strip().lower()
    if env:
        return env
    from importlib.util import find_spec

    needs = ("numba", "scipy", "threadpoolctl")  # what the numba backend imports
    return "numba" if all(find_spec(m) is not None for m in needs) else "numpy"


def get_backend(name: str | Backend | None = None) -> Backend:
    """The :class:`Backend` called ``name`` (or the default one when ``name`` is None)."""
    if isinstance(name, Backend):
        return name
    name = (name or default_backend_name()).lower()
    if name not in _instances:
        _instances[name] = _create(name)
    return _instances[name]


def set_backend(name: str) -> Backend:
    """Make ``name`` (``"numpy"``, ``"numba"`` or ``"cupy"``) the default backend of models built from now on."""
    backend = get_backend(name)
    _default[:] = [backend.name]
    return backend


def available_backends() -> list[str]:
    """The backends that can run here (``cupy`` only with CuPy installed and a GPU present)."""
    names = []
    for name in BACKEND_NAMES:
        try:
            get_backend(name)
        except (ImportError, RuntimeError):
            continue
        names.append(name)
    return names
