"""Along one axis of a sliding window: which taps fall inside the image, and which window reads a given pixel.

Shared by the convolution's col2im and the max-pooling kernels (compiled inline into them).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, inline="always")
def taps_inside(start, k, size):
    """The taps ``[lo, hi)`` of a ``k``-wide window starting at ``start`` that fall inside ``[0, size)``."""
    return max(0, -start), min(k, size - start)


@njit(cache=True, inline="always")
def window_reading(p, pad, tap, stride, out_size):
    """The window (output index) whose tap ``tap`` reads input position ``p``, or -1 when none does."""
    t = p + pad - tap
    if t < 0 or t % stride != 0:
        return -1
    o = t // stride
    return o if o < out_size else -1
