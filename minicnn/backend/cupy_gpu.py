"""CuPy kernels for NVIDIA GPUs: the same results as :mod:`numpy_ref`, one GPU thread per output element.

Every kernel is written in GATHER form: a thread computes one element of its output from what it reads,
so no two threads write the same place and no atomics are needed:

- ``im2col``: thread = one entry ``(row, (i, j, c))`` of the column matrix, reads one input pixel (or 0 in padding);
- ``col2im``: thread = one input pixel, sums the column entries that were read from it;
- max-pool forward: thread = one output pixel, scans its window (first maximum wins);
- max-pool backward: thread = one input pixel, sums ``dy`` of the windows whose winner it is;
- average-pool forward: thread = one output pixel, sums its window's real cells and divides by their number;
- average-pool backward: thread = one input pixel, sums ``dy / count`` of the windows that cover it;
- bias + ReLU, ReLU backward, dropout mask, the Adadelta step: elementwise (one fused kernel each);
- batch normalization: sums over rows as products with a row of ones (cuBLAS), then one elementwise kernel.

Matrix products go to cuBLAS through ``cupy.matmul``. Index arithmetic is 32-bit: arrays up to 2**31 elements.
"""

from __future__ import annotations

import numpy as np

from . import numpy_ref
from .base import Backend, adam_numbers
from .geometry import Window

try:
    import cupy
except ImportError as err:  # pragma: no cover - depends on the machine
    raise ImportError(
        "the 'cupy' backend needs CuPy and an NVIDIA GPU: pip install 'minicnn[gpu]' installs "
        "cupy-cuda13x (CUDA 13 drivers); for CUDA 12 drivers use pip install cupy-cuda12x"
    ) from err

from . import cupy_kernels as kernels  # noqa: E402  (after the check that CuPy is there)


def _geometry(shape, win: Window):
    _, h, w, c = shape
    return (h, w, c, win.kh, win.kw, win.sh, win.sw, win.pad_top, win.pad_left, win.out_h, win.out_w)


class CupyBackend(Backend):
    """CuPy arrays on the current GPU; the data crosses to and from the host only through asarray/to_numpy."""

    name = "cupy"
    xp = cupy
    gates_on_device = True

    def __init__(self):
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except cupy.cuda.runtime.CUDARuntimeError as err:
            raise RuntimeError(
                f"the 'cupy' backend found no usable NVIDIA GPU ({err}); use 'numba' or 'numpy'"
            ) from err
        if count == 0:
            raise RuntimeError("the 'cupy' backend found no NVIDIA GPU; use 'numba' or 'numpy'")
        self._ones = {}  # rows of ones for bias_gradient, one per (length, dtype)
        self._always = cupy.ones((), dtype=cupy.bool_)  # the gate of an ungated Adadelta step

    def asarray(self, a, dtype=None):
        return cupy.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        return cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else np.array(a, copy=True)

    def synchronize(self):
        cupy.cuda.get_current_stream().synchronize()

    def make_rng(self, seed):
        return cupy.random.default_rng(seed)

    def uniform(self, rng, shape, dtype, out=None):
        return rng.random(shape, dtype=dtype)  # a fresh device array: CuPy's memory pool makes that cheap

    def im2col(self, x, win: Window, out=None):
        x = cupy.ascontiguousarray(x)
        n, _, _, c = x.shape
        if out is None:
            out = cupy.empty((n * win.out_h * win.out_w, win.kh * win.kw * c), dtype=x.dtype)
        return kernels.im2col(x, *_geometry(x.shape, win), out)

    def col2im(self, cols, x_shape, win: Window, out=None):
        dx = cupy.empty(x_shape, dtype=cols.dtype) if out is None else out
        return kernels.col2im(cupy.ascontiguousarray(cols), *_geometry(x_shape, win), dx)

    def maxpool_forward(self, x, win: Window, out=None, argmax_out=None):
        x = cupy.ascontiguousarray(x)
        n, _, _, c = x.shape
        y = cupy.empty((n, win.out_h, win.out_w, c), dtype=x.dtype) if out is None else out
        argmax = cupy.empty(y.shape, dtype=cupy.int32) if argmax_out is None else argmax_out
        kernels.maxpool_forward(x, *_geometry(x.shape, win), y, argmax)
        return y, argmax

    def maxpool_backward(self, dy, argmax, x_shape, win: Window, out=None):
        dx = cupy.empty(x_shape, dtype=dy.dtype) if out is None else out
        return kernels.maxpool_backward(cupy.ascontiguousarray(dy), argmax, *_geometry(x_shape, win), dx)

    def avgpool_forward(self, x, win: Window, out=None):
        x = cupy.ascontiguousarray(x)
        n, _, _, c = x.shape
        y = cupy.empty((n, win.out_h, win.out_w, c), dtype=x.dtype) if out is None else out
        return kernels.avgpool_forward(x, *_geometry(x.shape, win), y)

    def avgpool_backward(self, dy, x_shape, win: Window, out=None):
        dx = cupy.empty(x_shape, dtype=dy.dtype) if out is None else out
        return kernels.avgpool_backward(cupy.ascontiguousarray(dy), *_geometry(x_shape, win), dx)

    def bias_relu(self, z, bias):
        return kernels.bias_relu(z, bias, z)

    def relu_backward(self, dy, y, out=None):
        return kernels.relu_backward(dy, y, out) if out is not None else kernels.relu_backward(dy, y)

    def dropout_mask(self, uniform, rate: float, out=None):
        t = uniform.dtype.type
        args = (uniform, t(rate), t(1.0 / (1.0 - rate)))
        return kernels.dropout_mask(*args, out) if out is not None else kernels.dropout_mask(*args)

    def bias_gradient(self, grad_z, out):
        """The sum over rows as a product with a row of ones (cuBLAS): CuPy's axis-0 reduction of a tall, narrow
        gradient keeps most of the GPU idle (see docs/performance.md, "Bias gradient on the GPU")."""
        rows = grad_z.shape[0]
        if rows < 4096:
            return super().bias_gradient(grad_z, out)
        key = (rows, grad_z.dtype.str)
        if key not in self._ones:
            self._ones[key] = cupy.ones((1, rows), dtype=grad_z.dtype)
        cupy.matmul(self._ones[key], grad_z, out=out.reshape(1, -1))
        return out

    def weight_gradient(self, cols, grad_z, out, scratch=None):
        """Long sums (the first conv: 73,728 rows into 25 x 32) as per-sample products then a sum: more parallel
        work for the GPU than one product with a tiny output."""
        return numpy_ref.weight_gradient_split(cupy, cols, grad_z, out)

    def dropout_apply(self, x, uniform, rate: float, out=None, mask_out=None):
        t = x.dtype.type
        y = cupy.empty_like(x) if out is None else out
        m = cupy.empty_like(x) if mask_out is None else mask_out
        kernels.dropout_apply(x, uniform, t(rate), t(1.0 / (1.0 - rate)), y, m)
        return y, m

    def softmax_crossentropy_step(self, p, y, epsilon, grad_out=None):
        """One kernel (a thread per sample) and two means, instead of about fifteen small kernels."""
        n, k = p.shape
        t = p.dtype.type
        p, y = cupy.ascontiguousarray(p), cupy.ascontiguousarray(y)
        grad = cupy.empty_like(p) if grad_out is None else grad_out
        row_loss = cupy.empty(n, dtype=p.dtype)
        row_hit = cupy.empty(n, dtype=p.dtype)
        kernels.softmax_xent(p, y, k, t(epsilon), t(1.0 / n), row_loss, row_hit, grad)
        return row_loss.mean(), row_hit.mean(), grad

    # --- batch normalization: sums over rows as products with a row of ones (bias_gradient), then one kernel --------
    def batchnorm_forward_training(self, x2d, gamma, beta, eps, out=None, xhat_out=None):
        """The two statistics as sums over rows (the squared deviations written into ``y``'s buffer on the way),
        then :meth:`batchnorm_forward_inference`'s one kernel."""
        x2d = cupy.ascontiguousarray(x2d)
        m, c = x2d.shape
        y = cupy.empty_like(x2d) if out is None else out
        mean = self.bias_gradient(x2d, cupy.empty(c, dtype=x2d.dtype))
        mean /= m
        var = self.bias_gradient(kernels.bn_squared_deviation(x2d, mean, y), cupy.empty(c, dtype=x2d.dtype))
        var /= m
        y, xhat, inv_std = self.batchnorm_forward_inference(x2d, mean, var, gamma, beta, eps, y, xhat_out)
        return y, xhat, mean, var, inv_std

    def batchnorm_forward_inference(self, x2d, mean, var, gamma, beta, eps, out=None, xhat_out=None):
        x2d = cupy.ascontiguousarray(x2d)
        inv_std = numpy_ref.batchnorm_inverse_std(cupy, var, eps)
        gamma, beta = numpy_ref.batchnorm_affine(cupy, gamma, beta, x2d.shape[1], x2d.dtype)
        y = cupy.empty_like(x2d) if out is None else out
        xhat = cupy.empty_like(x2d) if xhat_out is None else xhat_out
        kernels.bn_normalize(x2d, mean, inv_std, gamma, beta, xhat, y)
        return y, xhat, inv_std

    def batchnorm_backward(self, dy2d, xhat, gamma, inv_std, training=True, out=None, dgamma_out=None, dbeta_out=None):
        """The two sums over rows (``dy * xhat`` formed in ``dx``'s buffer on the way), then one kernel for dx."""
        dy2d, xhat = cupy.ascontiguousarray(dy2d), cupy.ascontiguousarray(xhat)
        m, c = dy2d.shape
        dx = cupy.empty_like(dy2d) if out is None else out
        dbeta = self.bias_gradient(dy2d, cupy.empty(c, dtype=dy2d.dtype) if dbeta_out is None else dbeta_out)
        dgamma = self.bias_gradient(
            cupy.multiply(dy2d, xhat, out=dx), cupy.empty(c, dtype=dy2d.dtype) if dgamma_out is None else dgamma_out
        )
        scale = inv_std if gamma is None else gamma * inv_std
        if training:
            kernels.bn_input_gradient(dy2d, xhat, dbeta / m, dgamma / m, scale, dx)
        else:
            cupy.multiply(dy2d, scale, out=dx)
        return dx, dgamma, dbeta

    def graph_capture(self):
        """A capturer of one training step as a CUDA graph (:mod:`minicnn.graph_step`)."""
        from .cuda_graph import CupyGraphCapture

        return CupyGraphCapture()

    def fused_update(self, rule: str):
        """:meth:`adadelta_step` for ``"adadelta"``, :meth:`adam_step` for ``"adam"`` (AdamW too),
        :meth:`adam_amsgrad_step` for ``"adam_amsgrad"``, else None."""
        return {"adadelta": self.adadelta_step, "adam": self.adam_step, "adam_amsgrad": self.adam_amsgrad_step}.get(
            rule
        )

    def adam_step(
        self,
        param,
        grad,
        momentums,
        velocities,
        learning_rate,
        lr_t,
        one_minus_beta_1,
        one_minus_beta_2,
        epsilon,
        weight_decay,
        gate=None,
        velocity_hats=None,
    ):
        """One Adam (AdamW) step in place, one fused kernel per parameter; the numbers (``Adam.hyperparameters()``,
        float64 on the host) enter in the weights' dtype; ``gate`` is read on the device. Returns True."""
        numbers = adam_numbers(
            param.dtype, learning_rate, lr_t, one_minus_beta_1, one_minus_beta_2, epsilon, weight_decay
        ) + (self._always if gate is None else gate,)
        if velocity_hats is None:
            kernels.adam(grad, *numbers, param, momentums, velocities)
        else:
            kernels.adam_amsgrad(grad, *numbers, param, momentums, velocities, velocity_hats)
        return True

    def adam_amsgrad_step(
        self,
        param,
        grad,
        momentums,
        velocities,
        velocity_hats,
        learning_rate,
        lr_t,
        one_minus_beta_1,
        one_minus_beta_2,
        epsilon,
        weight_decay,
        gate=None,
    ):
        """:meth:`adam_step` with AMSGrad's ``velocity_hats`` (the slots in ``Adam.slot_names`` order)."""
        return self.adam_step(
            param,
            grad,
            momentums,
            velocities,
            learning_rate,
            lr_t,
            one_minus_beta_1,
            one_minus_beta_2,
            epsilon,
            weight_decay,
            gate,
            velocity_hats=velocity_hats,
        )

    def adadelta_step(self, param, grad, accumulated_grad, accumulated_delta, learning_rate, rho, epsilon, gate=None):
        """One Adadelta step in place, one fused kernel per parameter instead of ten elementwise ones; ``gate`` (a 0-d
        boolean device array; None: always) is read on the device, no host synchronisation. Returns True."""
        t = param.dtype.type
        if gate is None:
            gate = self._always
        kernels.adadelta(
            grad, t(learning_rate), t(rho), t(1 - rho), t(epsilon), gate, param, accumulated_grad, accumulated_delta
        )
        return True
