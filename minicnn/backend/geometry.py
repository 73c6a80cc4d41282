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


def make_window(height: int, width: int, size: tuple[int, int], strides: tuple[int, int], padding: str) -> Window:
    """The :class:`Window` of a ``size`` window moving by ``strides`` over a ``height x width`` image."""
    out_h, top, bottom = _axis(height, size[0], strides[0], padding)
    out_w, left, right = _axis(width, size[1], strides[1], padding)
    return Window(size[0], size[1], strides[0], strides[1], top, bottom, left, right, out_h, out_w)


# --- the argument checks of a sliding window (Conv2D, the pooling layers) ----------------------------------------
def pair(value, what: str) -> tuple[int, int]:
    """``value`` as a pair of positive ints (an int ``k`` means ``(k, k)``); TypeError/ValueError naming ``what``."""
    pair_ = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair_) != 2 or not all(isinstance(v, int) for v in pair_):
        raise TypeError(f"{what} must be an int or a pair of ints, got {value!r}")
    if min(pair_) <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return pair_


def check_padding(padding: str) -> str:
    """``padding`` when it is ``"valid"`` or ``"same"``, else a ValueError naming it."""
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding


def window_over(
    input_shape,
    size: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    layer_type: str,
    layer_name: str,
    what: str = "kernel",
) -> Window:
    """The :class:`Window` of a layer over inputs of ``input_shape`` ``(height, width, channels)``; a ValueError
    naming the layer when the shape is not an image's or the window does not fit it (``what``: "kernel", "pool")."""
    if len(input_shape) != 3:
        raise ValueError(
            f"{layer_type} {layer_name!r} expects inputs of shape (height, width, channels), got {tuple(input_shape)}"
        )
    h, w, _ = input_shape
    win = make_window(h, w, size, strides, padding)
    if win.out_h <= 0 or win.out_w <= 0:
        raise ValueError(f"layer {layer_name!r}: {what} {size} with padding {padding!r} does not fit its input {h}x{w}")
    return win
