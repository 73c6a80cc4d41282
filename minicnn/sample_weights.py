"""Sample weights and class weights for ``fit``/``evaluate``, as Keras defines them.

A weight ``w_n`` per sample scales that sample's loss: a batch's loss is ``(1/N) * sum_n w_n * l_n`` (Keras's
"sum_over_batch_size": divided by the batch size N, not by the sum of the weights), and so its gradient.
``class_weight={class: weight}`` is shorthand for ``w_n = class_weight.get(class of sample n, 1.0)``; the class of a
one-hot row is its argmax. Keras's rules for where they apply:

- ``sample_weight`` and ``class_weight`` cannot both be given;
- with ``validation_split`` the held-out fraction keeps its share of ``sample_weight`` (its val_loss is weighted),
  while ``class_weight`` weighs the training samples only;
- ``validation_data=(x, y, sample_weight)`` weighs the validation loss.
"""

from __future__ import annotations

import numbers

import numpy as np


def checked_sample_weight(sample_weight, n: int, name: str = "sample_weight") -> np.ndarray | None:
    """``sample_weight`` as a float64 host array of shape (n,) (an (n, 1) column is accepted), checked finite and
    >= 0; None stays None."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},): one weight per sample, got shape {w.shape}")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)) or (w.size and w.min() < 0):
        raise ValueError(f"{name} must be finite and >= 0 (found {w[~np.isfinite(w) | (w < 0)][:3]})")
    return w


def class_weight_to_sample_weight(y, class_weight: dict) -> np.ndarray:
    """``w_n = class_weight.get(class_n, 1.0)``, ``class_n`` the argmax of one-hot row n (or y[n] for class indices)."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class index: weight}}, got {type(class_weight).__name__}")
    for key, value in class_weight.items():
        if not isinstance(key, numbers.Integral) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"class_weight must map class indices (ints) to finite numbers, got {key!r}: {value!r}")
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = labels.argmax(axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
    labels = np.round(labels).astype(np.int64)
    table = {int(k): float(v) for k, v in class_weight.items()}
    return np.array([table.get(int(c), 1.0) for c in labels], dtype=np.float64)


def fit_weights(y_train, n_train: int, n_all: int, sample_weight, class_weight):
    """The training and validation weights ``(w_train, w_val)`` (each a host array or None) for ``fit``, whose
    training samples are the first ``n_train`` of ``n_all`` (the rest held out by ``validation_split``)."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError("give sample_weight or class_weight, not both (Keras refuses both too)")
    if class_weight is not None:
        return class_weight_to_sample_weight(y_train, class_weight), None
    w = checked_sample_weight(sample_weight, n_all)
    if w is None:
        return None, None
    return w[:n_train], (w[n_train:] if n_train < n_all else None)


def unpack_validation_data(validation_data):
    """``(x_val, y_val, sample_weight_val or None)`` from a tuple of two or three."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError(
            "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val), "
            f"got {type(validation_data).__name__}"
            + (f" of {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else "")
        )
    x_val, y_val, w_val = (*validation_data, None)[:3]
    return x_val, y_val, checked_sample_weight(w_val, len(x_val), "the validation sample_weight")


def to_backend(backend, dtype, weights):
    """Host weights to the backend in the model's dtype (None stays None)."""
    return None if weights is None else backend.asarray(np.ascontiguousarray(weights, dtype=dtype))
