"""Zero padding: rows and columns of zeros around each channel of an NHWC image.

Forward, with ``((top, bottom), (left, right))``::

    y = zeros(N, top + H + bottom, left + W + right, C)
    y[:, top:top + H, left:left + W, :] = x

Backward: the padded cells depend on nothing, and the others are x itself, so the gradient is the middle of dY::

    dx = dy[:, top:top + H, left:left + W, :]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Layer

if TYPE_CHECKING:
    from ..annotations import Padding, Shape


def _amount(value, what):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value!r}")
    return value


def padding_amounts(padding):
    """Keras's ``padding`` argument as ``((top, bottom), (left, right))``: an int ``p`` pads ``p`` on every side;
    a pair ``(ph, pw)`` pads ``ph`` above and below, ``pw`` left and right; a pair of pairs gives each side."""
    if isinstance(padding, int) and not isinstance(padding, bool):
        p = _amount(padding, "padding")
        return ((p, p), (p, p))
    if not isinstance(padding, (tuple, list)) or len(padding) != 2:
        raise TypeError(
            f"padding must be an int, a pair of ints (height, width), or a pair of pairs "
            f"((top, bottom), (left, right)), got {padding!r}"
        )
    sides = []
    for axis, value in zip(("height", "width"), padding):
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise TypeError(f"padding for the {axis} must be an int or a pair of ints, got {value!r}")
            sides.append(
                (_amount(value[0], f"padding ({axis}, before)"), _amount(value[1], f"padding ({axis}, after)"))
            )
        else:
            p = _amount(value, f"padding ({axis})")
            sides.append((p, p))
    return tuple(sides)


class ZeroPadding2D(Layer):
    """Keras's ``ZeroPadding2D``: ``padding`` is an int, ``(height, width)`` or ``((top, bottom), (left, right))``;
    default 1 on every side.

    Example:
        >>> import minicnn as mc
        >>> model = mc.Sequential([mc.layers.ZeroPadding2D(((1, 2), (0, 3)), input_shape=(5, 5, 2))])
        >>> model.layers[0].output_shape
        (8, 8, 2)
    """

    def __init__(self, padding: Padding = 1, input_shape: Shape | None = None, name: str | None = None):
        super().__init__(name=name, input_shape=input_shape)
        self.padding = padding_amounts(padding)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"ZeroPadding2D {self.name!r} expects inputs of shape (height, width, channels), got "
                f"{tuple(input_shape)}"
            )
        (top, bottom), (left, right) = self.padding
        h, w, c = input_shape
        return (top + h + bottom, left + w + right, c)

    def _inside(self):
        """The slice of the padded image where the input sits."""
        (top, _), (left, _) = self.padding
        _, h, w, _ = self.x_shape
        return (slice(None), slice(top, top + h), slice(left, left + w), slice(None))

    def forward(self, x, training=False):
        self.x_shape = x.shape
        shape = (x.shape[0],) + self.output_shape
        y = self.buffer("y", shape)
        y = self.backend.xp.zeros(shape, dtype=x.dtype) if y is None else y
        y.fill(0)
        y[self._inside()] = x
        return y

    def backward(self, grad):
        dx = self.buffer("grad_x", self.x_shape)
        if dx is None:
            return grad[self._inside()].copy()
        dx[...] = grad[self._inside()]
        return dx

    def describe(self) -> dict:
        (top, bottom), (left, right) = self.padding
        return {
            "forward": f"Y = X with zeros around it (top {top}, bottom {bottom}, left {left}, right {right})",
            "backward": "dX = the middle of dY (the padding's gradient is dropped)",
            "products": "",
        }

    def get_config(self):
        return {"name": self.name, "padding": self.padding}
