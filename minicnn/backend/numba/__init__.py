"""Numba kernels for the CPU: the same results as :mod:`minicnn.backend.numpy_ref`, in parallel loops.

Each kernel is a plain loop nest, parallel (``prange``) over an outer axis whose iterations write disjoint
outputs, so no two threads ever write the same element:

- ``im2col``: over samples, each writes its own rows of the column matrix;
- ``col2im`` in GATHER form: over input rows, each row sums the column entries that were read from it
  (no scatter, hence no write race and no ``np.add.at``);
- max-pool forward: over ``(n, oh)``; backward in gather form too: over input rows ``(n, h)``;
- fused bias + ReLU and its backward: over rows.

Modules, one concern each: :mod:`.threads` (the threading layer and the one-BLAS-thread limiter), :mod:`.conv`
(im2col, col2im and the fused convolution), :mod:`.pooling`, :mod:`.elementwise` (bias/ReLU, sums, products split
by rows, dropout, uniform numbers), :mod:`.optimizers` (fused update rules), and :mod:`.backend`
(:class:`NumbaBackend`, whose methods call them). Kernels are compiled on first use and cached on disk
(``cache=True``), once per dtype; the window geometry travels into them as one ``Window`` named tuple.

When changing a kernel, measure it inside the module's own functions, called with run-time arguments: a test kernel
called with constant shapes gets them folded in by LLVM and can look faster than the real one will be (see
docs/performance.md, "Measuring kernels").
"""

from __future__ import annotations

from . import threads  # noqa: F401  (first: the threading layer is chosen before any kernel runs)
from .backend import NumbaBackend

__all__ = ["NumbaBackend"]
