"""Names for the types of the public API's arguments (for type checkers and readers; the layers import them only
when type checking)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike  # anything np.asarray takes: arrays, lists (CuPy arrays on the GPU path)
Shape = Sequence[int]  # a shape without the batch axis, e.g. (28, 28, 1)
IntPair = int | tuple[int, int]  # a window size or stride: one int for both axes, or (rows, columns)
Padding = int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]]
Initializer = str | Callable[..., np.ndarray]  # a name ("glorot_uniform") or fn(shape, rng, dtype)
RegularizerLike = Any  # None, a name ("l2") or a minicnn.regularizers.Regularizer
PathLike = str | os.PathLike
CallbackList = Sequence[Any]  # minicnn.callbacks.Callback objects
