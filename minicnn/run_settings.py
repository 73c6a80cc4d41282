"""The settings that define a training run, recorded in every checkpoint and compared when resuming.

Resuming continues a run exactly only when everything that shaped it is the same: the seed (initial weights,
shuffling, dropout), the batch size, the optimizer and its settings, the data (its size, a fingerprint of its
values, the validation split), the architecture, the backend and its thread count. ``fit(resume=True)`` refuses a
checkpoint whose settings differ, listing the differences; ``allow_changed=`` accepts changes to the ones that are
safe (they change the numbers, not the meaning of the run): the backend, the thread count, the optimizer's
settings and the batch size. ``epochs`` is never a setting: a resumed run may always train for longer.

Results depend on the thread count (sums split between threads round differently), so a run resumed with other
threads is not bitwise identical to an uninterrupted one; that is why ``threads`` is recorded.
"""

from __future__ import annotations

import zlib

import numpy as np

SAFE_TO_CHANGE = ("backend", "threads", "optimizer", "batch_size")


def thread_count(backend) -> int | None:
    """The number of threads the backend's kernels use (Numba's), or None where it does not apply."""
    if backend.name != "numba":
        return None
    import numba

    return int(numba.get_num_threads())


def fingerprint(x) -> str:
    """A cheap checksum of a host array's values: the CRC-32 of every 97th sample's bytes and of its shape."""
    sample = x[::97]
    sample = np.ascontiguousarray(sample.get() if hasattr(sample, "__cuda_array_interface__") else sample)
    return f"{zlib.crc32(sample.tobytes(), zlib.crc32(repr(np.shape(x)).encode())):08x}"


def describe(model, batch_size: int, validation: str, x_train, n_val: int, extra: dict | None = None) -> dict:
    """The run's settings as JSON-ready values (``validation``: the split, or ``"validation_data"``)."""
    settings = {
        "seed": int(model.seed),
        "batch_size": int(batch_size),
        "optimizer": model.optimizer.get_config(),
        "samples": int(len(x_train)),
        "data": fingerprint(x_train),
        "validation": validation,
        "validation_samples": int(n_val),
        "dtype": str(model.dtype),
        "backend": model.backend.name,
        "threads": thread_count(model.backend),
        "architecture": [f"{name}{list(shape)}" for name, shape in model.named_shapes()],
    }
    for key, value in (extra or {}).items():
        settings[str(key)] = value
    return settings


def differences(saved: dict, current: dict) -> dict:
    """``{name: (saved, current)}`` for every setting whose value differs (a setting absent from one side counts
    as None there)."""
    return {
        key: (saved.get(key), current.get(key))
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key)
    }


def check_resume(saved: dict | None, current: dict, allow_changed, source: str) -> dict:
    """Refuse to resume when a setting differs from the checkpoint's, unless every difference is one of
    ``allow_changed`` (and safe to change). Returns the accepted differences. A ValueError lists the others."""
    allow_changed = tuple(allow_changed or ())
    unsafe = [name for name in allow_changed if name not in SAFE_TO_CHANGE]
    if unsafe:
        raise ValueError(
            f"allow_changed: {unsafe} cannot change on resume (only {', '.join(SAFE_TO_CHANGE)} can; "
            f"the others would make the resumed run a different run)"
        )
    if saved is None:  # a checkpoint written before runs recorded their settings: nothing to compare
        return {}
    diffs = differences(saved, current)
    refused = {k: v for k, v in diffs.items() if k not in allow_changed}
    if refused:
        listed = "; ".join(f"{k}: {_short(a)} in the checkpoint, {_short(b)} now" for k, (a, b) in refused.items())
        safe = [k for k in refused if k in SAFE_TO_CHANGE]
        hint = (
            f" (allow_changed / --allow-changed {','.join(safe)} accepts {'these' if len(safe) > 1 else 'this'})"
            if safe
            else ""
        )
        raise ValueError(
            f"{source}: the checkpoint was written by a run with other settings: {listed}{hint}; "
            f"resume with the same settings, or start again (overwrite)"
        )
    return diffs


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
