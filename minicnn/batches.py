"""How ``fit`` and ``evaluate`` walk the data: Keras's validation split, each epoch's order, evaluation in
batches (moved here from minicnn/training.py, which still exports them)."""

from __future__ import annotations

import numpy as np

from . import losses as losses_module


def split_validation(x, y, validation_split):
    """Keras's split: the last ``validation_split`` fraction, before shuffling. Returns (x, y, x_val, y_val)."""
    if isinstance(validation_split, (bool, str)) or not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    n = len(x)
    n_val = int(n * validation_split)
    if validation_split > 0 and (n_val == 0 or n_val == n):
        raise ValueError(
            f"validation_split={validation_split} of {n} samples leaves an empty "
            f"{'validation' if n_val == 0 else 'training'} set"
        )
    if n_val == 0:
        return x, y, None, None
    return x[: n - n_val], y[: n - n_val], x[n - n_val :], y[n - n_val :]


def evaluate_arrays(model, xb, yb, batch_size, progress=None, sample_weight=None):
    """Mean loss and accuracy over backend arrays, in batches, dropout off. Returns backend 0-d arrays.

    The loss includes the weight penalties (Keras's ``evaluate`` does): the mean data loss plus their sum.
    With ``sample_weight`` (a backend array (N,)) the data loss is ``(1/N) sum_n w_n l_n``, the accuracy unweighted."""
    xp = model.backend.xp
    total_loss = xp.zeros((), dtype=model.dtype)
    total_acc = xp.zeros((), dtype=model.dtype)
    accuracy = getattr(model.loss, "accuracy", None) or losses_module.categorical_accuracy
    penalty = model.regularization_loss() if hasattr(model, "regularization_loss") else None
    n = xb.shape[0]
    for step, start in enumerate(range(0, n, batch_size), 1):
        x, y = xb[start : start + batch_size], yb[start : start + batch_size]
        p = model.forward(x, training=False)
        if sample_weight is None:
            total_loss += model.loss.forward(xp, p, y) * x.shape[0]
        else:
            w = sample_weight[start : start + batch_size]
            total_loss += losses_module.weighted_loss(model.loss, xp, p, y, w) * x.shape[0]
        total_acc += accuracy(xp, p, y) * x.shape[0]
        if progress is not None and progress.wants_values and step % 10 == 0:
            done = min(start + batch_size, n)
            progress.update(
                step, float(total_loss) / done + (0.0 if penalty is None else float(penalty)), float(total_acc) / done
            )
    if penalty is not None:
        return total_loss / n + penalty, total_acc / n
    return total_loss / n, total_acc / n


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool = True) -> np.ndarray:
    """The order of the training samples in ``epoch``: a permutation drawn from a stream seeded by (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
