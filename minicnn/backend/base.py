"""The :class:`Backend` interface: where arrays live (``xp``) and the named kernels layer code calls.

This base class is the plain NumPy backend: every kernel calls its reference in :mod:`numpy_ref`. The Numba and
CuPy backends subclass it and replace kernels with faster ones that give the same results.
"""

from __future__ import annotations

import numpy

from . import numpy_ref
from .geometry import Window


def adam_numbers(dtype, learning_rate, lr_t, one_minus_beta_1, one_minus_beta_2, epsilon, weight_decay) -> tuple:
    """The numbers of a fused Adam (AdamW) kernel, in its order and in the weights' ``dtype`` (they arrive as
    ``Adam.hyperparameters()``, float64 on the host)."""
    t = numpy.dtype(dtype).type
    return t(learning_rate), t(lr_t), t(one_minus_beta_1), t(one_minus_beta_2), t(epsilon), t(weight_decay)


class Backend:
    """The plain NumPy backend; the others subclass it and replace kernels with faster ones.

    Attributes:
        name: ``"numpy"``, ``"numba"`` or ``"cupy"``.
        xp: the array module that layer code calls (``numpy`` or ``cupy``).
        fuses_conv2d: True when the backend offers :meth:`conv2d_fused_forward` and :meth:`conv2d_fused_backward`
            (one call for a convolution's whole forward or backward pass); else a layer composes the plain
            kernels (``numpy_ref.conv2d_forward`` shows how).
        gates_on_device: True when the callables of :meth:`fused_update` read their ``gate`` on the device; else
            the caller tests the gate on the host and skips the call.
    """

    name = "numpy"
    xp = numpy
    fuses_conv2d = False
    gates_on_device = False

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
        """``(N, H, W, C) -> (N*OH*OW, KH*KW*C)``: row ``(n, oh, ow)`` holds the window's patch in ``(i, j, c)``
        order."""
        return numpy_ref.im2col(self.xp, x, win, out)

    def col2im(self, cols, x_shape, win: Window, out=None):
        """The adjoint of :meth:`im2col`: each input pixel sums the column entries read from it."""
        return numpy_ref.col2im(self.xp, cols, x_shape, win, out)

    def maxpool_forward(self, x, win: Window, out=None, argmax_out=None):
        """``(y, argmax)``: each window's maximum and the index ``i*KW + j`` of its first maximum."""
        return numpy_ref.maxpool_forward(self.xp, x, win, out, argmax_out)

    def maxpool_backward(self, dy, argmax, x_shape, win: Window, out=None):
        """``dx``: each input pixel sums ``dy`` over the windows whose first maximum it is."""
        return numpy_ref.maxpool_backward(self.xp, dy, argmax, x_shape, win, out)

    def avgpool_forward(self, x, win: Window, out=None):
        """``y``: each window's mean over its real cells (padding not counted, Keras's rule)."""
        return numpy_ref.avgpool_forward(self.xp, x, win, out)

    def avgpool_backward(self, dy, x_shape, win: Window, out=None):
        """``dx``: each input pixel sums ``dy / count`` over the windows that cover it."""
        return numpy_ref.avgpool_backward(self.xp, dy, x_shape, win, out)

    def bias_relu(self, z, bias):
        """In place ``z <- max(z + bias, 0)`` (bias over the last axis); returns ``z``."""
        return numpy_ref.bias_relu(self.xp, z, bias)

    def relu_backward(self, dy, y, out=None):
        """``dy * [y > 0]`` (``y`` the ReLU's output)."""
        return numpy_ref.relu_backward(self.xp, dy, y, out)

    def matmul(self, a, b, out=None):
        """``a @ b`` of two matrices (written into ``out`` when given)."""
        return self.xp.matmul(a, b, out=out)

    def weight_gradient(self, cols, grad_z, out, scratch=None):
        """``cols^T @ dZ`` into ``out``. ``scratch(key, shape, dtype)``, when given, lends work buffers (the layer's
        own, reused across steps) to a backend that wants partial sums."""
        return numpy_ref.weight_gradient(self.xp, cols, grad_z, out)

    def bias_gradient(self, grad_z, out):
        """The sum of ``dZ`` over rows into ``out``."""
        return numpy_ref.bias_gradient(self.xp, grad_z, out)

    def dropout_mask(self, uniform, rate: float, out=None):
        """``[uniform >= rate] / (1 - rate)``."""
        return numpy_ref.dropout_mask(self.xp, uniform, rate, out)

    def dropout_apply(self, x, uniform, rate: float, out=None, mask_out=None):
        """``(x * m, m)`` with ``m = dropout_mask(uniform, rate)`` (one fused kernel on the GPU)."""
        mask = self.dropout_mask(uniform, rate, out=mask_out)
        return self.xp.multiply(x, mask, out=out), mask

    def softmax_crossentropy_step(self, p, y, epsilon, grad_out=None):
        """(mean loss, accuracy, dL/dz = (p - y)/N) for softmax outputs ``p`` and one-hot ``y`` (fused on the GPU)."""
        return numpy_ref.softmax_crossentropy_step(self.xp, p, y, epsilon, grad_out)

    def batchnorm_forward_training(self, x2d, gamma, beta, eps, out=None, xhat_out=None):
        """Batch normalization of the columns of ``x2d`` ``(M, C)`` with the batch's mean and biased variance:
        ``(y, xhat, mean, var, inv_std)`` (``gamma``/``beta`` may be None)."""
        return numpy_ref.batchnorm_forward_training(self.xp, x2d, gamma, beta, eps, out, xhat_out)

    def batchnorm_forward_inference(self, x2d, mean, var, gamma, beta, eps, out=None, xhat_out=None):
        """Batch normalization of the columns of ``x2d`` with given statistics: ``(y, xhat, inv_std)``."""
        return numpy_ref.batchnorm_forward_inference(self.xp, x2d, mean, var, gamma, beta, eps, out, xhat_out)

    def batchnorm_backward(self, dy2d, xhat, gamma, inv_std, training=True, out=None, dgamma_out=None, dbeta_out=None):
        """``(dx, dgamma, dbeta)`` of batch normalization (``training``: through the batch statistics too)."""
        return numpy_ref.batchnorm_backward(self.xp, dy2d, xhat, gamma, inv_std, training, out, dgamma_out, dbeta_out)

    def fused_update(self, rule: str):
        """This backend's fused kernel for the optimizer update ``rule`` (``"adadelta"``), or None: then the
        optimizer runs its plain rule. A fused kernel is called with the rule's arrays and hyper-parameters and
        ``gate=`` (see :attr:`gates_on_device`); it returns True when it took the step, False when it cannot take
        these arrays (nothing touched: the caller runs its plain rule)."""
        return None

    # --- compiling (a backend that compiles kernels on first use says when and for how long) ---------------
    def compile_seconds(self) -> float:
        """Seconds this process has spent compiling this backend's kernels so far (0: it compiles none)."""
        return 0.0

    def on_compile_start(self, notice) -> None:
        """Call ``notice()`` once, when the backend next starts compiling a kernel (None forgets it)."""

    def __repr__(self):
        return f"<minicnn backend {self.name!r}>"
