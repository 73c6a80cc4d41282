"""Dropout behaviour that mutation testing (mutmut) showed no other test pinned down: the rate's bounds and message,
the layer's own seed and name."""

import numpy as np
import pytest

import minicnn as mc
from minicnn import layers


def _mask(dropout, model_seed):
    model = mc.Sequential([dropout], seed=model_seed, backend="numpy")
    x = np.ones((4, 6), np.float32)
    return model.layers[0].forward(x, training=True)


def test_dropout_rate_zero_is_accepted_and_one_refused_by_name():
    assert np.array_equal(_mask(layers.Dropout(0.0, input_shape=(6,)), 0), np.ones((4, 6), np.float32))
    for rate in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"^Dropout rate must be in \[0, 1\), got "):
            layers.Dropout(rate)


def test_a_dropout_seed_fixes_the_masks_whatever_the_models_seed():
    a = _mask(layers.Dropout(0.5, seed=3, input_shape=(6,)), model_seed=1)
    b = _mask(layers.Dropout(0.5, seed=3, input_shape=(6,)), model_seed=2)
    c = _mask(layers.Dropout(0.5, input_shape=(6,)), model_seed=1)
    d = _mask(layers.Dropout(0.5, input_shape=(6,)), model_seed=2)
    again = _mask(layers.Dropout(0.5, input_shape=(6,)), model_seed=1)
    assert np.array_equal(a, b) and not np.array_equal(c, d)
    assert np.array_equal(c, again)  # without its own seed, the model's seed decides
    assert set(np.unique(a)) <= {0.0, 2.0}


def test_dropout_keeps_its_name():
    assert layers.Dropout(0.5, name="drop_a").get_config() == {"name": "drop_a", "rate": 0.5, "seed": None}
