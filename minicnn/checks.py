"""The checks that data passes on its way into a model: every problem a ValueError/TypeError that names it."""

from __future__ import annotations

import numpy as np


def to_backend_checked(backend, dtype, x, shape, name="x"):
    """Validate a host or backend array and move it to ``backend`` in ``dtype``.

    Checks, each a ValueError/TypeError naming ``name``: numbers (not strings or objects), the shape
    ``(N, *shape)`` (with a reshape hint when only the channel axis is missing), at least one sample, no NaN
    or infinity."""
    shape = tuple(shape)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as err:
            raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__} ({err})") from None
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
    expected = "(N, " + ", ".join(map(str, shape)) + ")"
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        hint = ""
        if tuple(x.shape[1:]) + (1,) == shape:
            hint = f"; add the channel axis: {name}.reshape(-1, {', '.join(map(str, shape))})"
        raise ValueError(f"{name} has shape {tuple(x.shape)} ({x.ndim} dimensions), expected {expected}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    xb = backend.asarray(x, dtype=dtype)
    if x.dtype.kind == "f" and not bool(backend.xp.isfinite(xb).all()):
        bad = int((~backend.xp.isfinite(xb)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite values; clean or impute them first")
    return xb


def targets_checked(backend, dtype, y, n, output_shape, one_hot_for=None):
    """Validate targets: one row per sample of x (``n``), rows of the output's shape; class indices get a hint to
    use ``to_categorical``. With ``one_hot_for`` (the loss's name), rows must also be one-hot (or probability)
    rows summing to 1. Returns the backend array."""
    k = output_shape[-1]
    if hasattr(y, "ndim") and y.ndim == 1 and y.dtype.kind in "iu" and len(output_shape) == 1:
        raise ValueError(
            f"y holds class indices of shape {tuple(y.shape)}; the loss expects one-hot rows of "
            f"shape (N, {k}): use minicnn.utils.to_categorical(y, {k})"
        )
    yb = to_backend_checked(backend, dtype, y, output_shape, name="y")
    if yb.shape[0] != n:
        raise ValueError(f"x has {n} samples but y has {yb.shape[0]}")
    if one_hot_for is not None:
        xp = backend.xp
        if bool((yb < 0).any()) or bool((yb > 1).any()):
            raise ValueError(
                f"y must hold one-hot rows (values in [0, 1]) for {one_hot_for}, found values "
                f"from {float(yb.min())} to {float(yb.max())}"
            )
        sums = yb.sum(axis=-1)
        if not bool(xp.all(xp.abs(sums - 1) <= 1e-3)):
            worst = int(xp.argmax(xp.abs(sums - 1)))
            raise ValueError(
                f"y must hold one-hot rows summing to 1 for {one_hot_for}; row {worst} sums to {float(sums[worst])}"
            )
    return yb


def labels_checked(backend, y, n, output_shape, loss_name):
    """Validate class indices for a sparse loss (``loss_name``): shape ``(N,)`` or ``(N, 1)`` with ``N == n``,
    integers (an integer dtype, or floats holding whole numbers) in ``[0, K)`` for outputs of shape ``(K,)``.
    Returns them on ``backend`` as int64, shape (N,)."""
    if len(output_shape) != 1:
        raise ValueError(
            f"{loss_name} needs outputs of shape (K,) (one score per class), the model's are {tuple(output_shape)}"
        )
    k = output_shape[0]
    if not hasattr(y, "shape") or not hasattr(y, "dtype"):
        try:
            y = np.asarray(y)
        except (ValueError, TypeError) as err:
            raise TypeError(f"y must be an array of class indices, got {type(y).__name__} ({err})") from None
    y = backend.to_numpy(y) if type(y).__module__.startswith("cupy") else y
    if y.dtype.kind not in "iuf":
        raise TypeError(f"y must hold integer class indices for {loss_name}, got dtype {y.dtype}")
    if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        hint = " (one-hot rows? use loss='categorical_crossentropy')" if y.ndim == 2 and y.shape[1] == k else ""
        raise ValueError(
            f"y has shape {tuple(y.shape)}; {loss_name} expects class indices of shape (N,) or (N, 1){hint}"
        )
    y = y.reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"x has {n} samples but y has {y.shape[0]}")
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            first = int(np.argmin(whole))
            raise ValueError(f"y must hold integer class indices for {loss_name}; y[{first}] = {y[first].item()!r}")
    if n and (y.min() < 0 or y.max() >= k):
        bad = int(np.argmax((y < 0) | (y >= k)))
        raise ValueError(
            f"class index y[{bad}] = {y[bad].item()!r} is out of range for {k} classes (expected 0 to {k - 1})"
        )
    return backend.asarray(y.astype(np.int64))


def check_positive_int(value, name, minimum=1):
    """``int(value)`` when it is an int >= ``minimum``, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)
