"""Where arrays live and which kernels run: the backend seam.

Layer code is written once against ``backend.xp`` (NumPy or CuPy) and a handful of named kernels:

============================  ==========================================================
``im2col(x, win, out=None)``  ``(N, H, W, C) -> (N*OH*OW, KH*KW*C)`` patch matrix
``col2im(cols, x_shape, win)`` its adjoint, back to ``(N, H, W, C)``
``maxpool_forward(x, win)``   ``y, argmax`` (index of the first maximum in each window)
``maxpool_backward(dy, argmax, x_shape, win)``  routes ``dy`` to those maxima
``bias_relu(z, b)``           in place ``z <- max(z + b, 0)``
``relu_backward(dy, y)``      ``dy * [y > 0]``
``matmul(a, b, out=None)``    ``a @ b`` (every matrix product of a layer goes through it)
``conv2d_forward(x, w, b, win, relu)``  ``im2col(x) @ w + b`` (+ ReLU) and what the backward needs
``conv2d_backward(saved, dz, ...)``  dW, db and ``col2im(dz @ w^T)`` of that convolution
``weight_gradient(cols, dz, out)``  ``cols^T @ dz`` (a layer's kernel gradient)
``bias_gradient(dz, out)``    the sum of ``dz`` over rows (a layer's bias gradient)
``dropout_mask(u, rate)``     ``[u >= rate] / (1 - rate)``
``dropout_apply(x, u, rate)`` ``(x * mask, mask)``
``adadelta_update(...)``      one in-place Adadelta step of a parameter (fused on the GPU)
``softmax_crossentropy_step`` loss, accuracy and (p - y)/N of a softmax output in one pass
============================  ==========================================================

Every kernel that returns an array also takes ``out=`` (``argmax_out=`` too for max-pooling): a buffer of the
right shape that it fills instead of allocating. Layers inside a model pass their own reused buffers, so that a
training step allocates no large array (fresh large arrays cost page faults: 4-6 ms of a 50 ms CPU step).

Backends: ``"numpy"`` (the plain reference), ``"numba"`` (parallel CPU kernels) and ``"cupy"`` (NVIDIA GPU).
Choose one with :func:`set_backend`, the ``MINICNN_BACKEND`` environment variable, or the ``backend=``
argument of :class:`minicnn.Sequential`.
"""

from __future__ import annotations

import os

import numpy

from . import numpy_ref
from .geometry import Window, make_window

__all__ = ["Backend", "Window", "make_window", "get_backend", "set_backend", "available_backends",
           "array_module", "backend_of"]

BACKEND_NAMES = ("numpy", "numba", "cupy")


class Backend:
    """The plain NumPy backend; the others subclass it and replace kernels with faster ones.

    Attributes:
        name: ``"numpy"``, ``"numba"`` or ``"cupy"``.
        xp: the array module that layer code calls (``numpy`` or ``cupy``).
    """

    name = "numpy"
    xp = numpy

    # --- moving data between the host and the backend's memory -------------------------------
    def asarray(self, a, dtype=None):
        """Host (NumPy) or backend array -> an array of this backend (no copy when already there)."""
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        """Backend array -> a NumPy array that the caller owns (always a copy)."""
        return numpy.array(a, copy=True)

    def synchronize(self):
        """Wait for queued device work (a no-op on the CPU)."""

    # --- random numbers ------------------------------------------------------------------------
    def make_rng(self, seed):
        """A random generator living with this backend's arrays, seeded by ``seed`` (int or None)."""
        return numpy.random.default_rng(seed)

    def uniform(self, rng, shape, dtype, out=None):
        """Uniform numbers in [0, 1) of ``shape`` and ``dtype`` from ``rng`` (made by :meth:`make_rng`), written into
        ``out`` when given (the same numbers either way)."""
        return rng.random(shape, dtype=dtype) if out is None else rng.random(dtype=dtype, out=out)

    # --- kernels (the reference versions; faster backends override them) -------------------------
    def im2col(self, x, win: Window, out=None):
        return numpy_ref.im2col(self.xp, x, win, out)

    def col2im(self, cols, x_shape, win: Window, out=None):
        return numpy_ref.col2im(self.xp, cols, x_shape, win, out)

    def maxpool_forward(self, x, win: Window, out=None, argmax_out=None):
        return numpy_ref.maxpool_forward(self.xp, x, win, out, argmax_out)

    def maxpool_backward(self, dy, argmax, x_shape, win: Window, out=None):
        return numpy_ref.maxpool_backward(self.xp, dy, argmax, x_shape, win, out)

    def bias_relu(self, z, bias):
        return numpy_ref.bias_relu(self.xp, z, bias)

    def relu_backward(self, dy, y, out=None):
        return numpy_ref.relu_backward(self.xp, dy, y, out)

    def matmul(self, a, b, out=None):
        """``a @ b`` of two matrices (written into ``out`` when given)."""
        return self.xp.matmul(a, b, out=out)

    def conv2d_forward(self, x, kernel2d, bias, win: Window, relu: bool, out=None, scratch=None):
        """A convolution's linear part: ``Z = im2col(x) @ kernel2d + bias``, then ``max(Z, 0)`` when ``relu``.

        ``kernel2d`` is the Keras kernel reshaped to ``(KH*KW*C, F)``; ``bias`` is ``(F,)`` or None. Returns
        ``(Z, saved)``: ``Z`` of shape ``(N*OH*OW, F)`` (written into ``out`` when given) and what
        :meth:`conv2d_backward` needs from this call (here the column matrix; the Numba backend keeps only ``x``
        and rebuilds the columns a few samples at a time). ``scratch(key, shape, dtype)``, when given, lends
        work buffers (the layer's own, reused across steps).
        """
        cols = self.im2col(x, win, out=_lend(scratch, "cols", (len(x) * win.out_h * win.out_w, kernel2d.shape[0]),
                                             x.dtype))
        z = self.matmul(cols, kernel2d, out=out)
        if bias is not None and relu:
            self.bias_relu(z, bias)
        elif bias is not None:
            z += bias
        elif relu:
            self.xp.maximum(z, 0, out=z)
        return z, cols

    def conv2d_backward(self, saved, grad_z, kernel2d, x_shape, win: Window, grad_kernel, grad_bias,
                        input_gradient=True, out=None, scratch=None, relu_output=None):
        """The gradients of :meth:`conv2d_forward` given ``dZ`` (``(N*OH*OW, F)``): ``dW = cols^T @ dZ`` into
        ``grad_kernel`` (``(KH*KW*C, F)``), ``db = sum(dZ)`` into ``grad_bias`` (unless None), and returns
        ``dX = col2im(dZ @ kernel2d^T)`` (None when not ``input_gradient``).

        With ``relu_output`` (the forward's ReLU output ``y``), ``grad_z`` is ``dY`` and ``dZ = dY * [y > 0]`` is
        formed on the way (the Numba backend never stores it whole)."""
        cols = saved
        if relu_output is not None:
            grad_z = self.relu_backward(grad_z, relu_output, out=_lend(scratch, "grad_z", grad_z.shape, grad_z.dtype))
        self.weight_gradient(cols, grad_z, grad_kernel)
        if grad_bias is not None:
            self.bias_gradient(grad_z, grad_bias)
        if not input_gradient:
            return None
        grad_cols = self.matmul(grad_z, kernel2d.T, out=_lend(scratch, "grad_cols", cols.shape, cols.dtype))
        return self.col2im(grad_cols, x_shape, win, out=out)

    def weight_gradient(self, cols, grad_z, out, scratch=None):
        """``cols^T @ dZ`` into ``out``; ``scratch`` as in :meth:`conv2d_forward` (for a backend's partial sums)."""
        return numpy_ref.weight_gradient(self.xp, cols, grad_z, out)

    def bias_gradient(self, grad_z, out):
        return numpy_ref.bias_gradient(self.xp, grad_z, out)

    def dropout_mask(self, uniform, rate: float, out=None):
        return numpy_ref.dropout_mask(self.xp, uniform, rate, out)

    def dropout_apply(self, x, uniform, rate: float, out=None, mask_out=None):
        """``(x * m, m)`` with ``m = dropout_mask(uniform, rate)`` (one fused kernel on the GPU)."""
        mask = self.dropout_mask(uniform, rate, out=mask_out)
        return self.xp.multiply(x, mask, out=out), mask

    def softmax_crossentropy_step(self, p, y, epsilon, grad_out=None):
        """(mean loss, accuracy, dL/dz = (p - y)/N) for softmax outputs ``p`` and one-hot ``y`` (fused on the GPU)."""
        return numpy_ref.softmax_crossentropy_step(self.xp, p, y, epsilon, grad_out)

    def adadelta_update(self, param, grad, accumulated_grad, accumulated_delta, learning_rate, rho, epsilon,
                        gate=None):
        """One Adadelta step in place; skipped when ``gate`` (a 0-d boolean array) is False."""
        if gate is not None and not bool(gate):
            return
        self._adadelta_step(param, grad, accumulated_grad, accumulated_delta, learning_rate, rho, epsilon)

    def _adadelta_step(self, param, grad, accumulated_grad, accumulated_delta, learning_rate, rho, epsilon):
        # the arithmetic of one step (the Numba backend replaces it with one fused pass)
        numpy_ref.adadelta_update(self.xp, param, grad, accumulated_grad, accumulated_delta, learning_rate, rho,
                                  epsilon)

    def __repr__(self):
        return f"<minicnn backend {self.name!r}>"


def _lend(scratch, key, shape, dtype):
    """``scratch(key, shape, dtype)`` when a scratch supplier was given, else None (the kernel allocates)."""
    return None if scratch is None else scratch(key, shape, dtype)


def backend_of(a) -> Backend:
    """The backend whose memory holds array ``a`` (cupy for a CuPy array, else the NumPy reference)."""
    return get_backend("cupy") if type(a).__module__.startswith("cupy") else get_backend("numpy")


def array_module(a):
    """``cupy`` for a CuPy array, else ``numpy`` (Chainer's ``get_array_module``, without importing CuPy)."""
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy
    return numpy


_instances: dict[str, Backend] = {}
_default: list[str] = []  # the name chosen by set_backend(); empty means "from the environment"


def _create(name: str) -> Backend:
    if name == "numpy":
        return Backend()
    if name == "numba":
        try:
            from .numba_cpu import NumbaBackend
        except ImportError as err:
            raise ImportError(f"the 'numba' backend needs numba, scipy and threadpoolctl, which "
                              f"'pip install minicnn' installs ({err})") from err
        return NumbaBackend()
    if name == "cupy":
        try:
            from .cupy_gpu import CupyBackend
        except ImportError as err:
            raise ImportError(str(err) if "minicnn[gpu]" in str(err) else
                              "the 'cupy' backend needs CuPy and an NVIDIA GPU: pip install 'minicnn[gpu]' "
                              f"(cupy-cuda13x; cupy-cuda12x for CUDA 12 drivers) ({err})") from err
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

    needs = ("numba", "scipy", "threadpoolctl")   # what the numba backend imports
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
