"""Plain reference kernels, written once against an array module ``xp`` (NumPy or CuPy).

These are the readable truth that every faster kernel is tested against. Each loops only over the
window offsets ``(i, j)`` (25 iterations for a 5x5 kernel) and moves whole strided slices at a time.

Layouts (NHWC, like Keras):

- ``x``: ``(N, H, W, C)``; the window geometry ``win`` comes from :func:`~minicnn.backend.geometry.make_window`.
- im2col columns: ``(N * OH * OW, KH * KW * C)``, row ``(n, oh, ow)``, column ``(i, j, c)``, so that a
  Keras kernel ``(KH, KW, C, F)`` reshaped to ``(KH * KW * C, F)`` multiplies it directly.
"""

from __future__ import annotations

from .geometry import Window


def _pad(xp, x, win: Window, value=0.0):
    if not win.padded:
        return x
    widths = ((0, 0), (win.pad_top, win.pad_bottom), (win.pad_left, win.pad_right), (0, 0))
    return xp.pad(x, widths, mode="constant", constant_values=value)


def _window_slice(win: Window, i: int, j: int):
    """The slice of the padded input that window offset (i, j) visits, one element per output pixel."""
    return (
        slice(None),
        slice(i, i + win.sh * (win.out_h - 1) + 1, win.sh),
        slice(j, j + win.sw * (win.out_w - 1) + 1, win.sw),
        slice(None),
    )


def im2col(xp, x, win: Window, out=None):
    """cols[(n, oh, ow), (i, j, c)] = x_padded[n, oh*sh + i, ow*sw + j, c]."""
    n, _, _, c = x.shape
    xpad = _pad(xp, x, win)
    if out is None:
        out = xp.empty((n * win.out_h * win.out_w, win.kh * win.kw * c), dtype=x.dtype)
    cols = out.reshape(n, win.out_h, win.out_w, win.kh, win.kw, c)
    for i in range(win.kh):
        for j in range(win.kw):
            cols[:, :, :, i, j, :] = xpad[_window_slice(win, i, j)]
    return out


def _into(out, result):
    """Return ``result``, copied into ``out`` when the caller gave a buffer."""
    if out is None:
        return result
    out[...] = result
    return out


def col2im(xp, cols, x_shape, win: Window, out=None):
    """The adjoint of im2col: dx[n, h, w, c] = sum of cols entries that im2col read from x[n, h, w, c]."""
    n, h, w, c = x_shape
    dxpad = xp.zeros((n, h + win.pad_top + win.pad_bottom, w + win.pad_left + win.pad_right, c), dtype=cols.dtype)
    cols6 = cols.reshape(n, win.out_h, win.out_w, win.kh, win.kw, c)
    for i in range(win.kh):
        for j in range(win.kw):
            dxpad[_window_slice(win, i, j)] += cols6[:, :, :, i, j, :]
    return _into(out, dxpad[:, win.pad_top : win.pad_top + h, win.pad_left : win.pad_left + w, :])


def maxpool_forward(xp, x, win: Window, out=None, argmax_out=None):
    """y[n, oh, ow, c] = max over the window; argmax = index i*KW + j of its FIRST maximum (TensorFlow's rule).

    Padding (``"same"``) counts as -inf, so it is never the maximum.
    """
    xpad = _pad(xp, x, win, value=-xp.inf)
    windows = xp.stack([xpad[_window_slice(win, i, j)] for i in range(win.kh) for j in range(win.kw)])
    argmax = xp.argmax(windows, axis=0).astype(xp.int32)
    y = xp.take_along_axis(windows, argmax[None], axis=0)[0]
    return _into(out, y), _into(argmax_out, argmax)


def maxpool_backward(xp, dy, argmax, x_shape, win: Window, out=None):
    """dx[n, h, w, c] = sum of dy over the windows whose first maximum sits at (h, w)."""
    n, h, w, c = x_shape
    dxpad = xp.zeros((n, h + win.pad_top + win.pad_bottom, w + win.pad_left + win.pad_right, c), dtype=dy.dtype)
    for i in range(win.kh):
        for j in range(win.kw):
            dxpad[_window_slice(win, i, j)] += xp.where(argmax == i * win.kw + j, dy, 0)
    return _into(out, dxpad[:, win.pad_top : win.pad_top + h, win.pad_left : win.pad_left + w, :])


def avgpool_counts(xp, x_shape, win: Window, dtype):
    """count[oh, ow] = the number of real (not padded) input cells in window (oh, ow), as ``dtype``: padding is
    not counted (Keras/TensorFlow's rule for ``"same"``). Per axis: ``min(start + k, size) - max(start, 0)``."""
    _, h, w, _ = x_shape
    start_h = xp.arange(win.out_h) * win.sh - win.pad_top
    start_w = xp.arange(win.out_w) * win.sw - win.pad_left
    rows = xp.minimum(start_h + win.kh, h) - xp.maximum(start_h, 0)
    cols = xp.minimum(start_w + win.kw, w) - xp.maximum(start_w, 0)
    return (rows[:, None] * cols[None, :]).astype(dtype)


def avgpool_forward(xp, x, win: Window, out=None):
    """y[n, oh, ow, c] = (sum of the window's real cells) / count[oh, ow] (padding neither added nor counted)."""
    n, _, _, c = x.shape
    xpad = _pad(xp, x, win)
    total = xp.zeros((n, win.out_h, win.out_w, c), dtype=x.dtype) if out is None else out
    total[...] = 0
    for i in range(win.kh):
        for j in range(win.kw):
            total += xpad[_window_slice(win, i, j)]
    total /= avgpool_counts(xp, x.shape, win, x.dtype)[:, :, None]
    return total


def avgpool_backward(xp, dy, x_shape, win: Window, out=None):
    """dx[n, h, w, c] = sum over the windows (oh, ow) that cover (h, w) of dy[n, oh, ow, c] / count[oh, ow]."""
    n, h, w, c = x_shape
    share = dy / avgpool_counts(xp, x_shape, win, dy.dtype)[:, :, None]
    dxpad = xp.zeros((n, h + win.pad_top + win.pad_bottom, w + win.pad_left + win.pad_right, c), dtype=dy.dtype)
    for i in range(win.kh):
        for j in range(win.kw):
            dxpad[_window_slice(win, i, j)] += share
    return _into(out, dxpad[:, win.pad_top : win.pad_top + h, win.pad_left : win.pad_left + w, :])


def bias_relu(xp, z, bias):
    """In place: z <- max(z + bias, 0), bias broadcast over the last axis. Returns z."""
    z += bias
    xp.maximum(z, 0, out=z)
    return z


def relu_backward(xp, dy, y, out=None):
    """dz = dy * [y > 0] (y is the ReLU's output)."""
    return xp.multiply(dy, y > 0, out=out)


def conv2d_forward(xp, x, kernel2d, bias, win: Window, relu: bool, cols_out=None, out=None):
    """A convolution's linear part composed of the plain kernels: ``cols = im2col(x)``,
    ``Z = cols @ kernel2d + bias``, then ``max(Z, 0)`` when ``relu``.

    ``x`` is ``(N, H, W, C)``; ``kernel2d`` the Keras kernel reshaped to ``(KH*KW*C, F)``; ``bias`` ``(F,)`` or None.
    Returns ``(Z, cols)``: ``Z`` of shape ``(N*OH*OW, F)`` (into ``out`` when given) and the column matrix
    ``(N*OH*OW, KH*KW*C)`` (into ``cols_out`` when given) that :func:`conv2d_backward` needs. This is the truth a
    backend's fused convolution is tested against.
    """
    cols = im2col(xp, x, win, cols_out)
    z = xp.matmul(cols, kernel2d, out=out)
    if bias is not None and relu:
        bias_relu(xp, z, bias)
    elif bias is not None:
        z += bias
    elif relu:
        xp.maximum(z, 0, out=z)
    return z, cols


def conv2d_backward(
    xp, cols, grad, kernel2d, x_shape, win: Window, grad_kernel, grad_bias, relu_output=None, input_gradient=True
):
    """The gradients of :func:`conv2d_forward` from its columns ``cols`` and ``grad`` (``(N*OH*OW, F)``).

    ``grad`` is ``dZ``, or ``dY`` when ``relu_output`` (the forward's ReLU output ``y``) is given: then
    ``dZ = dY * [y > 0]``. Writes ``dW = cols^T @ dZ`` into ``grad_kernel`` (``(KH*KW*C, F)``) and
    ``db = sum of dZ over rows`` into ``grad_bias`` (unless None); returns ``dX = col2im(dZ @ kernel2d^T)`` of shape
    ``x_shape``, or None when not ``input_gradient``.
    """
    grad_z = grad if relu_output is None else relu_backward(xp, grad, relu_output)
    weight_gradient(xp, cols, grad_z, grad_kernel)
    if grad_bias is not None:
        bias_gradient(xp, grad_z, grad_bias)
    if not input_gradient:
        return None
    grad_cols = xp.matmul(grad_z, kernel2d.T)
    return col2im(xp, grad_cols, x_shape, win)


def weight_gradient(xp, cols, grad_z, out):
    """dW = cols^T @ dZ: (P, M) @ (M, F) -> (P, F), written into ``out``."""
    return xp.matmul(cols.T, grad_z, out=out)


def weight_gradient_split(xp, cols, grad_z, out, min_rows_per_entry=64):
    """dW = cols^T @ dZ as above, but when the rows M vastly outnumber the result's entries P*F (the first conv:
    73,728 rows for a 25 x 32 result), as one product per sample followed by a sum over samples: BLAS libraries
    parallelise such long sums poorly. Falls back to the single product otherwise."""
    rows, p = cols.shape
    f = grad_z.shape[1]
    n = next((k for k in (128, 64, 32, 16, 8) if rows % k == 0), 0)
    if rows < min_rows_per_entry * p * f or not n:
        return weight_gradient(xp, cols, grad_z, out)
    per_sample = xp.matmul(cols.reshape(n, rows // n, p).transpose(0, 2, 1), grad_z.reshape(n, rows // n, f))
    return per_sample.sum(axis=0, out=out)


def bias_gradient(xp, grad_z, out):
    """db = sum over rows of dZ, written into ``out``."""
    return grad_z.sum(axis=0, out=out)


def dropout_mask(xp, uniform, rate: float, out=None):
    """The inverted-dropout multiplier: 1/(1-rate) where uniform >= rate, else 0 (keep probability 1-rate)."""
    scale = uniform.dtype.type(1.0 / (1.0 - rate))
    return xp.multiply(uniform >= rate, scale, out=out)


def crossentropy_per_sample(xp, p, y, epsilon):
    """Keras's categorical cross-entropy of each row: -sum_k y_k log(clip(p_k / sum_j p_j, eps, 1 - eps))."""
    q = xp.clip(p / p.sum(axis=-1, keepdims=True), epsilon, 1 - epsilon)
    return -(y * xp.log(q)).sum(axis=-1)


def softmax_crossentropy_step(xp, p, y, epsilon, grad_out=None):
    """What a training step needs from softmax outputs ``p`` (N, K) and one-hot ``y``, in one place:
    the mean loss, the accuracy (argmax agreement) and the fused gradient dL/dz = (p - y) / N."""
    loss = crossentropy_per_sample(xp, p, y, epsilon).mean()
    return loss, accuracy(xp, p, y), softmax_crossentropy_grad(xp, p, y, grad_out)


def accuracy(xp, p, y):
    """Fraction of rows whose largest output is at the target's class (first maximum on ties), 0-d array."""
    return (p.argmax(axis=-1) == y.argmax(axis=-1)).mean(dtype=p.dtype)


def softmax_crossentropy_grad(xp, p, y, out=None):
    """dL/dz for p = softmax(z) under the mean cross-entropy: (p - y) / N."""
    grad = xp.subtract(p, y, out=out)
    grad /= p.shape[0]
    return grad


def batchnorm_affine(xp, gamma, beta, channels: int, dtype):
    """``(gamma, beta)`` with a missing one (``scale=False``, ``center=False``) replaced by ones or zeros of
    ``(channels,)``: ``xhat * 1 + 0`` is ``xhat`` exactly, so a fast kernel can always take both."""
    gamma = xp.ones(channels, dtype=dtype) if gamma is None else gamma
    beta = xp.zeros(channels, dtype=dtype) if beta is None else beta
    return gamma, beta


def batchnorm_inverse_std(xp, var, eps):
    """inv_std = 1 / sqrt(var + eps), per channel."""
    return 1.0 / xp.sqrt(var + eps)


def batchnorm_forward_inference(xp, x2d, mean, var, gamma, beta, eps, out=None, xhat_out=None):
    """Batch normalization with given statistics, over the rows ``m`` of ``x2d`` ``(M, C)`` (one column per channel)::

        inv_std = 1 / sqrt(var + eps)             (C,)
        xhat    = (x - mean) * inv_std            (M, C)
        y       = xhat * gamma + beta             (M, C); gamma or beta None: left out

    Returns ``(y, xhat, inv_std)`` (``y`` into ``out``, ``xhat`` into ``xhat_out`` when given)."""
    inv_std = batchnorm_inverse_std(xp, var, eps)
    xhat = xp.subtract(x2d, mean, out=xhat_out)
    xhat *= inv_std
    if gamma is not None:
        y = xp.multiply(xhat, gamma, out=out)
    else:
        y = xhat.copy() if out is None else _into(out, xhat)
    if beta is not None:
        y += beta
    return y, xhat, inv_std


def batchnorm_forward_training(xp, x2d, gamma, beta, eps, out=None, xhat_out=None):
    """Batch normalization with the batch's own statistics (training), per column of ``x2d`` ``(M, C)``::

        mean = sum_m x_m / M,   var = sum_m (x_m - mean)^2 / M     (biased: divided by M, as Keras does)

    then :func:`batchnorm_forward_inference` with them. Returns ``(y, xhat, mean, var, inv_std)``."""
    mean = x2d.mean(axis=0)
    var = xp.square(x2d - mean).mean(axis=0)
    y, xhat, inv_std = batchnorm_forward_inference(xp, x2d, mean, var, gamma, beta, eps, out, xhat_out)
    return y, xhat, mean, var, inv_std


def batchnorm_backward(xp, dy2d, xhat, gamma, inv_std, training=True, out=None, dgamma_out=None, dbeta_out=None):
    """The gradients of batch normalization from ``dY`` ``(M, C)``, the forward's ``xhat`` and ``inv_std``::

        dbeta  = sum_m dY_m                    dgamma = sum_m dY_m * xhat_m          (C,)
        dX     = gamma * inv_std * (dY - dbeta / M - xhat * dgamma / M)             training (batch statistics)
        dX     = gamma * inv_std * dY                                               inference (fixed statistics)

    (the first is ``gamma * inv_std / M * (M*dY - sum(dY) - xhat * sum(dY*xhat))``; gamma None: 1).
    Returns ``(dx, dgamma, dbeta)``, each into its ``*_out`` when given."""
    dbeta = dy2d.sum(axis=0, out=dbeta_out)
    dgamma = xp.multiply(dy2d, xhat).sum(axis=0, out=dgamma_out)
    scale = inv_std if gamma is None else gamma * inv_std
    if not training:
        return xp.multiply(dy2d, scale, out=out), dgamma, dbeta
    m = dy2d.shape[0]
    dx = xp.subtract(dy2d, dbeta / m, out=out)
    dx -= xhat * (dgamma / m)
    dx *= scale
    return dx, dgamma, dbeta
