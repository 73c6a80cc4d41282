"""The two pieces of data parallelism that need no MPI: splitting a global batch into shards, and packing every
gradient into one flat buffer so that a step exchanges them with ONE allreduce instead of one per tensor.

With ``p`` ranks and a global batch of ``B`` samples, rank ``r`` takes the contiguous slice
``[lo_r, hi_r)`` of ``n_r = B // p + (1 if r < B % p else 0)`` samples (the first ``B % p`` ranks take one more).
Each rank's loss is the mean over its shard, so its gradient is ``g_r = (1/n_r) sum_{i in shard r} dl_i/dw``; the
gradient of the mean over the global batch is then the weighted sum ::

    g = (1/B) sum_i dl_i/dw = sum_r (n_r / B) g_r

(``1/p`` each when the shards are equal; the weights matter for the last, partial batch of an epoch).
"""

from __future__ import annotations

import math


def shard_bounds(n: int, size: int, rank: int) -> tuple[int, int]:
    """``(lo, hi)``: the slice of ``n`` items that rank ``rank`` of ``size`` takes (contiguous, sizes differ by at
    most one, the first ``n % size`` ranks take one more; a rank may get none when ``n < size``)."""
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in [0, {size}), got {rank}")
    base, extra = divmod(int(n), int(size))
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class FlatBuffer:
    """One preallocated 1-D buffer holding every gradient, end to end, plus ``extra`` slots (the step's loss and
    accuracy travel in the same allreduce).

    ``pack(arrays, scale)`` writes ``scale * arrays`` into it; ``unpack(arrays)`` copies the buffer's pieces back
    into the arrays (in place: the layers keep their own gradient arrays). Both work for NumPy and CuPy arrays
    (``xp`` is the array module)."""

    def __init__(self, xp, shapes, dtype, extra: int = 0):
        self.shapes = [tuple(s) for s in shapes]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.offsets = [sum(self.sizes[:k]) for k in range(len(self.sizes))]
        self.n_values = sum(self.sizes)
        self.extra = int(extra)
        self.data = xp.zeros(self.n_values + self.extra, dtype=dtype)

    def matches(self, arrays, dtype) -> bool:
        """Whether this buffer was laid out for ``arrays`` (same shapes, same order) in ``dtype``."""
        return self.data.dtype == dtype and [tuple(a.shape) for a in arrays] == self.shapes

    def pieces(self):
        """Views of the buffer, one per array, in the arrays' shapes."""
        return [self.data[o : o + n].reshape(s) for o, n, s in zip(self.offsets, self.sizes, self.shapes)]

    @property
    def extras(self):
        """A view of the ``extra`` slots after the arrays."""
        return self.data[self.n_values :]

    def pack(self, arrays, extras=(), scale=None) -> None:
        """``buffer <- concat(ravel(a) for a in arrays) ++ extras``, times ``scale`` when given (one pass over the
        whole buffer)."""
        for piece, a in zip(self.pieces(), arrays):
            piece[...] = a
        for k, value in enumerate(extras):
            self.data[self.n_values + k] = value
        if scale is not None:
            self.data *= self.data.dtype.type(scale)

    def unpack(self, arrays) -> None:
        """``a <- its piece of the buffer`` for every array, in place."""
        for piece, a in zip(self.pieces(), arrays):
            a[...] = piece
