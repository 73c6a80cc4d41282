"""Inverted dropout.

Training, with rate ``r`` and a fresh uniform ``u`` per element::

    m = [u >= r] / (1 - r)         (kept with probability 1 - r, scaled so that E[y] = x)
    y = x * m                      dx = dy * m

Inference: ``y = x`` (no scaling needed, thanks to the 1/(1-r) at training time).

Data-parallel training (minicnn.distributed) sets ``batch_slice = (lo, hi, B)``: the layer then draws the uniforms of
the whole global batch of ``B`` samples and keeps rows ``lo:hi`` (its shard), so that N ranks use the very masks one
process would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import Layer

if TYPE_CHECKING:
    from ..annotations import Shape


class Dropout(Layer):
    """Keras's ``Dropout(rate)``: zero a fraction ``rate`` of the inputs at training time.

    ``seed`` fixes this layer's random stream; otherwise it is drawn from the model's seed.
    """

    def __init__(self, rate: float, seed: int | None = None, input_shape: Shape | None = None, name: str | None = None):
        super().__init__(name=name, input_shape=input_shape)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.batch_slice = None  # (lo, hi, global batch size) while a data-parallel step runs, else None

    def create_params(self, rng):
        self.stream_seed = self.seed if self.seed is not None else int(rng.integers(2**63))
        self.rng = self.backend.make_rng(self.stream_seed)

    def reseed(self, epoch: int):
        """Restart the random stream at a point fixed by (seed, epoch): fit() calls this at the start of every
        epoch, so that an epoch's masks do not depend on what ran before it (what makes resuming exact)."""
        self.rng = self.backend.make_rng(int(np.random.SeedSequence([self.stream_seed, epoch]).generate_state(1)[0]))

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self.mask = None
            return x
        shape = x.shape if self.batch_slice is None else (self.batch_slice[2], *x.shape[1:])
        uniform = self.backend.uniform(self.rng, shape, self.dtype, out=self.buffer("uniform", shape))
        if self.batch_slice is not None:  # the global batch's draws, this shard's rows
            uniform = uniform[self.batch_slice[0] : self.batch_slice[1]]
        y, self.mask = self.backend.dropout_apply(
            x, uniform, self.rate, out=self.buffer("y", x.shape), mask_out=self.buffer("mask", x.shape)
        )
        return y

    def backward(self, grad):
        if self.mask is None:
            return grad
        return self.backend.xp.multiply(grad, self.mask, out=self.buffer("grad_x", grad.shape))

    def describe(self) -> dict:
        return {
            "forward": f"Y = X * M, M = [U >= {self.rate}] / {1 - self.rate:g} (training); Y = X (inference)",
            "backward": "dX = dY * M",
            "products": "",
        }

    def get_config(self):
        return {"name": self.name, "rate": self.rate, "seed": self.seed}
