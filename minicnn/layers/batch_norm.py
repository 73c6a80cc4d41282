"""Batch normalization (Ioffe & Szegedy, 2015), as Keras 3's ``BatchNormalization`` computes it.

Each channel (the last axis) is normalised on its own. Write the input as a matrix of M rows, one per position
(M = N*H*W for an image batch (N, H, W, C), M = N after a Dense layer), and look at one channel: x_1 .. x_M.

Forward, training (the batch's own statistics)::

    mu      = (1/M) sum_m x_m                      the batch mean
    var     = (1/M) sum_m (x_m - mu)^2             the BIASED batch variance (divided by M, not M - 1)
    inv_std = 1 / sqrt(var + eps)
    xhat_m  = (x_m - mu) * inv_std                 zero mean, unit variance
    y_m     = gamma * xhat_m + beta                a learned scale and shift
    moving_mean     <- moving_mean     * momentum + mu  * (1 - momentum)
    moving_variance <- moving_variance * momentum + var * (1 - momentum)    (Keras feeds it the biased var too)

Inference: the same with mu, var replaced by moving_mean, moving_variance: then y is an affine function of x.

Backward, given dY = dL/dy. The weights first (y is linear in them)::

    dbeta  = sum_m dY_m
    dgamma = sum_m dY_m * xhat_m

The input in training is harder: every xhat_m depends on every x_k, through mu and var. Step by step, with
dxhat_m = dL/dxhat_m = gamma * dY_m and [m = k] being 1 when m = k, else 0::

    d mu / d x_k      = 1/M
    d var / d x_k     = (2/M) sum_m (x_m - mu) ([m = k] - 1/M) = (2/M) (x_k - mu)      (sum_m (x_m - mu) = 0)
    d inv_std / d x_k = -1/2 (var + eps)^(-3/2) * d var / d x_k = -inv_std^3 (x_k - mu) / M
    d xhat_m / d x_k  = ([m = k] - 1/M) inv_std + (x_m - mu) * d inv_std / d x_k
                      = inv_std * ([m = k] - 1/M - xhat_m xhat_k / M)

    dX_k = sum_m dxhat_m * d xhat_m / d x_k
         = inv_std * (dxhat_k - (1/M) sum_m dxhat_m - xhat_k (1/M) sum_m dxhat_m xhat_m)
         = gamma * inv_std / M * (M dY_k - sum_m dY_m - xhat_k sum_m dY_m xhat_m)
         = gamma * inv_std / M * (M dY_k - dbeta - xhat_k dgamma)           the same two sums as the weights'

The two subtracted terms are what the batch statistics contribute: dX has zero sum and is orthogonal to xhat.
A backward pass that treated mu and var as constants would return only gamma * inv_std * dY, which is the right
answer in inference (the moving statistics do not depend on x): dX_k = gamma * inv_std * dY_k.
"""

from __future__ import annotations

from numbers import Real
from typing import TYPE_CHECKING

from .. import initializers
from .base import Layer

if TYPE_CHECKING:
    from ..annotations import Initializer, Shape


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"BatchNormalization {name} must be a number, got {value!r}")
    return float(value)


class BatchNormalization(Layer):
    """Keras's ``BatchNormalization`` over the last axis (channels_last): per channel, normalise with the batch's
    statistics in training and with moving averages of them at inference, then scale by ``gamma`` and shift by
    ``beta``.

    Weights, in Keras's order: ``gamma`` (if ``scale``), ``beta`` (if ``center``), both trainable, then
    ``moving_mean`` and ``moving_variance``, not trainable (no gradient; updated by the forward pass in training).
    A frozen layer (``trainable = False``) normalises with its moving statistics even in training, as in Keras.

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.Dense(8, input_shape=(5,)), mc.layers.BatchNormalization()])
        >>> [w.shape for w in model.get_weights()][2:]
        [(8,), (8,), (8,), (8,)]
        >>> len(model.non_trainable_weights)
        2
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Initializer = "zeros",
        gamma_initializer: Initializer = "ones",
        moving_mean_initializer: Initializer = "zeros",
        moving_variance_initializer: Initializer = "ones",
        input_shape: Shape | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name, input_shape=input_shape)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"BatchNormalization axis must be an int (-1: the channels), got {axis!r}")
        self.axis = axis
        self.momentum = _number("momentum", momentum)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1), got {momentum!r}")
        self.epsilon = _number("epsilon", epsilon)
        if not self.epsilon > 0.0:
            raise ValueError(
                f"BatchNormalization epsilon must be > 0 (it keeps 1/sqrt(var + epsilon) finite), got {epsilon!r}"
            )
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def compute_output_shape(self, input_shape):
        rank = len(input_shape) + 1  # with the batch axis
        if self.axis not in (-1, rank - 1):
            raise ValueError(
                f"BatchNormalization {self.name!r} normalises the last axis (channels_last) only: "
                f"axis=-1 (or {rank - 1} for inputs of rank {rank}), got axis={self.axis}"
            )
        return input_shape

    def create_params(self, rng):
        shape = (self.input_shape[-1],)
        if self.scale:
            self.add_weight("gamma", self.gamma_initializer(shape, rng, self.dtype))
        if self.center:
            self.add_weight("beta", self.beta_initializer(shape, rng, self.dtype))
        self.add_weight("moving_mean", self.moving_mean_initializer(shape, rng, self.dtype), trainable=False)
        self.add_weight("moving_variance", self.moving_variance_initializer(shape, rng, self.dtype), trainable=False)

    def forward(self, x, training=False):
        be, c = self.backend, x.shape[-1]
        x2d = x.reshape(-1, c)  # (M, C): one row per position, one column per channel
        out = self.buffer("y", x.shape)
        out2d = None if out is None else out.reshape(-1, c)
        xhat = self.scratch("xhat", x2d.shape)  # kept for backward
        gamma, beta = self.params.get("gamma"), self.params.get("beta")
        self.batch_statistics = bool(training) and self.trainable
        if self.batch_statistics:
            y, self.xhat, mean, var, self.inv_std = be.batchnorm_forward_training(
                x2d, gamma, beta, self.epsilon, out2d, xhat
            )
            self._update_moving("moving_mean", mean)
            self._update_moving("moving_variance", var)
            self.batch_mean, self.batch_var = mean, var  # for a learner (and the trace) to look at
        else:
            y, self.xhat, self.inv_std = be.batchnorm_forward_inference(
                x2d, self.params["moving_mean"], self.params["moving_variance"], gamma, beta, self.epsilon, out2d, xhat
            )
        return y.reshape(x.shape)

    def _update_moving(self, name, batch_value):
        """moving <- moving * momentum + batch_value * (1 - momentum), in place (Keras's roundings)."""
        moving = self.params[name]
        moving *= self.momentum
        moving += batch_value * (1.0 - self.momentum)

    def backward(self, grad):
        c = grad.shape[-1]
        out = self.buffer("grad_x", grad.shape)
        dx, _, _ = self.backend.batchnorm_backward(
            grad.reshape(-1, c),
            self.xhat,
            self.params.get("gamma"),
            self.inv_std,
            self.batch_statistics,
            out=None if out is None else out.reshape(-1, c),
            dgamma_out=self.grads.get("gamma"),
            dbeta_out=self.grads.get("beta"),
        )
        return dx.reshape(grad.shape)

    def batch_statistics_summary(self) -> dict | None:
        """The last training pass's batch statistics over the channels (the trace shows them), else None."""
        if not getattr(self, "batch_statistics", False):
            return None
        mean, var = self.backend.to_numpy(self.batch_mean), self.backend.to_numpy(self.batch_var)
        return {
            "channels": int(mean.size),
            "mean_min": float(mean.min()),
            "mean_max": float(mean.max()),
            "var_min": float(var.min()),
            "var_max": float(var.max()),
        }

    def describe(self) -> dict:
        g = "gamma * " if self.scale else ""
        b = " + beta" if self.center else ""
        return {
            "forward": f"Xhat = (X - mean) / sqrt(var + {self.epsilon:g}); Y = {g}Xhat{b} (batch mean and "
            f"variance in training, moving ones at inference; moving = {self.momentum:g} * moving + "
            f"{1 - self.momentum:g} * batch)",
            "backward": "dbeta = sum(dY); dgamma = sum(dY * Xhat); dX = gamma / sqrt(var + eps) / M * "
            "(M * dY - dbeta - Xhat * dgamma) (training), gamma / sqrt(var + eps) * dY (inference)",
            "products": "",
        }

    def get_config(self):
        return {
            "name": self.name,
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }
