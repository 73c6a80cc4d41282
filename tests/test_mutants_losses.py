"""The losses, on what mutation testing (mutmut) showed no other test pinned down once the comparisons with Keras
were left out of its runs: softmax and log-softmax along the last axis and stable for large logits, the loss from
logits, the sparse loss as the categorical loss of one-hot rows (labels (N,) or (N, 1)), the sample-weighted step
and its caller's buffer, the accuracy's dtype, and the sample-weight error's message."""

import numpy as np
import pytest

from minicnn.backend import get_backend
from minicnn.losses import (
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    log_softmax,
    softmax,
    sparse_categorical_accuracy,
    weighted_loss,
    weighted_step,
)


def _logits(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def _softmax64(z):
    """The textbook formula in float64, one row at a time (no shift: the logits here are small)."""
    e = np.exp(np.asarray(z, np.float64))
    return e / e.sum(axis=-1, keepdims=True)


# --- softmax and log-softmax: along the last axis, stable ------------------------------------------------------
def test_softmax_and_log_softmax_work_along_the_last_axis_of_any_rank():
    z = _logits((2, 3, 4))  # the last axis is neither axis 1 nor the only axis
    np.testing.assert_allclose(softmax(np, z), _softmax64(z), rtol=1e-12)
    np.testing.assert_allclose(log_softmax(np, z), np.log(_softmax64(z)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(softmax(np, z).sum(axis=-1), np.ones((2, 3)), rtol=1e-12)


def test_softmax_and_log_softmax_are_stable_for_large_logits_in_every_row():
    # Row 0 is huge (exp overflows without the shift), row 1 ordinary: each row is shifted by its own maximum.
    small = np.array([0.0, 1.0, -1.0])
    z = np.stack([small + 1000.0, small])
    expected = np.stack([_softmax64(small), _softmax64(small)])  # softmax is invariant to a shift of the row
    np.testing.assert_allclose(softmax(np, z), expected, rtol=1e-12)
    np.testing.assert_allclose(log_softmax(np, z), np.log(expected), rtol=1e-12)
    assert np.isfinite(log_softmax(np, np.array([[-1000.0, 1000.0]]))).all()


# --- the loss from logits -----------------------------------------------------------------------------------
def test_the_loss_from_logits_is_minus_y_log_softmax_summed_over_classes():
    z = _logits((3, 4), seed=1)
    y = np.array([[0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]])
    expected = -(y * np.log(_softmax64(z))).sum(axis=1)
    per_sample = CategoricalCrossentropy(from_logits=True).per_sample(np, z, y)
    assert per_sample.shape == (3,)
    np.testing.assert_allclose(per_sample, expected, rtol=1e-12)
    assert (per_sample > 0).all()


# --- the sparse loss is the categorical loss of the one-hot rows -----------------------------------------------
@pytest.mark.parametrize("label_shape", [(3,), (3, 1)])
def test_one_hot_puts_a_single_one_per_row_for_labels_of_either_shape(label_shape):
    p = np.zeros((3, 4), np.float32)
    rows = SparseCategoricalCrossentropy.one_hot(np, np.array([2, 0, 3]).reshape(label_shape), p)
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, np.eye(4, dtype=np.float32)[[2, 0, 3]])


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_shape", [(3,), (3, 1)])
def test_the_sparse_gradients_are_the_categorical_ones_on_one_hot_rows(from_logits, label_shape):
    labels = np.array([1, 3, 0])
    z = _logits((3, 4), seed=2)
    p = z if from_logits else _softmax64(z)
    one_hot = np.eye(4)[labels]
    sparse = SparseCategoricalCrossentropy(from_logits=from_logits)
    y = labels.reshape(label_shape)
    # dL/dp (dL/dz from logits) and, for softmax outputs, the fused dL/dz = (p - onehot(y)) / N
    expected = CategoricalCrossentropy(from_logits=from_logits).backward(np, p, one_hot)
    np.testing.assert_allclose(sparse.backward(np, p, y), expected, rtol=1e-12)
    if from_logits:
        np.testing.assert_allclose(expected, (_softmax64(z) - one_hot) / 3, rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_allclose(sparse.backward_from_softmax(p.copy(), y), (p - one_hot) / 3, rtol=1e-12)


@pytest.mark.parametrize("label_shape", [(3,), (3, 1)])
def test_the_sparse_step_fills_the_callers_buffer_below_a_softmax(label_shape):
    backend, p = get_backend("numpy"), _softmax64(_logits((3, 4), seed=3))
    labels = np.array([2, 2, 1])
    buffer = np.empty_like(p)
    loss, acc, grad = SparseCategoricalCrossentropy().step(backend, p, labels.reshape(label_shape), True, buffer)
    assert grad is buffer
    np.testing.assert_allclose(grad, (p - np.eye(4)[labels]) / 3, rtol=1e-12)
    assert float(loss) == pytest.approx(-np.log(p[np.arange(3), labels]).mean(), rel=1e-12)
    assert float(acc) == pytest.approx(np.mean(p.argmax(axis=1) == labels))


# --- the accuracy --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label_shape", [(4,), (4, 1)])
def test_the_sparse_accuracy_compares_each_rows_argmax_with_its_label_in_the_outputs_dtype(label_shape):
    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]], np.float32)
    labels = np.array([1, 0, 0, 2]).reshape(label_shape)  # rows 0, 1 and 3 right
    acc = sparse_categorical_accuracy(np, p, labels)
    assert acc.dtype == np.float32  # like categorical_accuracy: the metric in the model's dtype
    assert float(acc) == pytest.approx(0.75)
    assert float(SparseCategoricalCrossentropy().accuracy(np, p, labels)) == pytest.approx(0.75)


# --- sample weights ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("through_softmax", [False, True])
def test_the_weighted_step_scales_each_rows_gradient_by_its_weight(through_softmax):
    backend, p = get_backend("numpy"), _softmax64(_logits((3, 4), seed=4))
    y, w = np.eye(4)[[0, 3, 1]], np.array([0.5, 2.0, 0.0])
    buffer = np.empty_like(p)
    loss, acc, grad = weighted_step(CategoricalCrossentropy(), backend, p, y, w, through_softmax, buffer)
    plain = CategoricalCrossentropy().backward(np, p, y)  # dL/dp, through the normalisation and the clip
    expected = (p - y) / 3 if through_softmax else plain
    np.testing.assert_allclose(grad, expected * w[:, None], rtol=1e-12)
    if through_softmax:
        assert grad is buffer  # the caller's buffer, as in the unweighted step
    assert float(loss) == pytest.approx((w * -np.log((p * y).sum(axis=1))).mean(), rel=1e-12)


def test_sample_weights_need_a_loss_with_per_sample_and_the_error_names_it():
    class OnlyAMean:
        def forward(self, xp, p, y):
            return 0.0

    pattern = r"^sample weights need a loss with per_sample\(xp, p, y\) \(each sample's loss\); OnlyAMean has none$"
    with pytest.raises(TypeError, match=pattern):
        weighted_loss(OnlyAMean(), np, np.ones((1, 2)), np.ones((1, 2)), np.ones(1))
