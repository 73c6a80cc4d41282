"""Window geometry shared by convolution and pooling: output sizes and padding.

Keras/TensorFlow conventions, per spatial axis with input size ``n``, window ``k`` and stride ``s``:

- ``"valid"``: ``out = floor((n - k) / s) + 1``, no padding;
- ``"same"``:  ``out = ceil(n / s)``, total padding ``max((out - 1) * s + k - n, 0)``, of which the
  smaller half goes before (top/left) and the larger half after (bottom/right).
"""

from __future__ import annotations

from typing import NamedTuple


class Window(NamedTuple):
    """A sliding window over an NHWC image: its size, stride, padding and the output size it gives."""

    kh: int
    kw: int
    sh: int
    sw: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    out_h: int
    out_w: int

    @property
    def padded(self) -> bool:
        return bool(self.pad_top or self.pad_bottom or self.pad_left or self.pad_right)


def _axis(n: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    if padding == "valid":
        return (n - k) // s + 1, 0, 0
    if padding == "same":
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return out, total // 2, total - total // 2
    raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")


def make_window(height: int, width: int, size: tuple[int, int], strides: tuple[int, int],
                padding: str) -> Window:
    """The :class:`Window` of a ``size`` window moving by ``strides`` over a ``height x width`` image."""
    out_h, top, bottom = _axis(height, size[0], strides[0], padding)
    out_w, left, right = _axis(width, size[1], strides[1], padding)
    return Window(size[0], size[1], strides[0], strides[1], top, bottom, left, right, out_h, out_w)
