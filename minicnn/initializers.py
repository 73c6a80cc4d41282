"""Weight initializers. Each returns a NumPy array; the layer moves it to its backend.

Fans follow Keras: for a Dense kernel ``(in, out)``, fan_in = in and fan_out = out; for a Conv2D kernel
``(kh, kw, in, out)``, fan_in = kh*kw*in and fan_out = kh*kw*out.
"""

from __future__ import annotations

import numpy as np


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel shape, as Keras computes them."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape, rng: np.random.Generator, dtype="float32"):
    """U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010; Keras's default)."""
    fan_in, fan_out = compute_fans(tuple(shape))
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape, rng: np.random.Generator, dtype="float32"):
    """N(0, 2 / fan_in) truncated at two standard deviations (Keras's he_normal), by redrawing."""
    fan_in, _ = compute_fans(tuple(shape))
    std = np.sqrt(2.0 / fan_in) / 0.87962566103423978  # std of a unit normal truncated at +-2
    values = rng.standard_normal(size=shape)
    bad = np.abs(values) > 2
    while bad.any():
        values[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(values) > 2
    return (values * std).astype(dtype)


def zeros(shape, rng=None, dtype="float32"):
    """All zeros (Keras's default bias initializer)."""
    return np.zeros(shape, dtype=dtype)


def ones(shape, rng=None, dtype="float32"):
    """All ones."""
    return np.ones(shape, dtype=dtype)


INITIALIZERS = {"glorot_uniform": glorot_uniform, "he_normal": he_normal, "zeros": zeros, "ones": ones}


def get(name_or_fn):
    """An initializer from its name (``"glorot_uniform"``, ``"he_normal"``, ``"zeros"``, ``"ones"``) or a callable
    ``fn(shape, rng, dtype) -> numpy array``."""
    if callable(name_or_fn):
        return name_or_fn
    try:
        return INITIALIZERS[name_or_fn]
    except KeyError:
        raise ValueError(f"unknown initializer {name_or_fn!r}; known initializers: {', '.join(INITIALIZERS)}") from None
