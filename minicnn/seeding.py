"""Seeds. A model draws everything random (initial weights, dropout streams, shuffling) from its own
generator, seeded by ``Sequential(seed=...)``, else by the seed given to :func:`set_seed`, else by fresh entropy.
"""

from __future__ import annotations

import numpy as np

_default_seed: list[int] = []


def set_seed(seed: int | None) -> None:
    """Make ``seed`` the seed of every model created afterwards without ``seed=`` (None: back to fresh entropy).

    Same seed, same initial weights, same dropout masks, same batches: the same results.
    """
    if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    _default_seed[:] = [] if seed is None else [int(seed)]


def resolve_seed(seed: int | None) -> int:
    """The seed a new model uses: ``seed``, else set_seed()'s, else a fresh random one (reported on the model)."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        return int(seed)
    if _default_seed:
        return _default_seed[0]
    return int(np.random.SeedSequence().entropy % 2**63)
