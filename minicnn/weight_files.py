"""Reading weight and checkpoint files safely: every array is read and checked before anything in the model
changes, and every problem is one ``ValueError`` that names the file and what is wrong with it.

What is refused: a missing file, a directory, an empty, truncated or corrupted file (a bad zip, a CRC error), a
``.npy`` array renamed ``.npz``, object or string arrays, NaN or infinite values, weights the model does not have
or lacks, a shape that differs, and (for weights files) a model whose layers differ from the file's list.
``strict=False`` loads what matches and skips the rest (Keras's ``skip_mismatch``).
"""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from .backend import backend_of

LAYERS_KEY = "__layers__"  # save_weights's list of "<layer name>:<layer type>", in order


def read_npz(path, what: str = "weights file") -> dict:
    """Every array of the ``.npz`` file at ``path``, read into memory (so that a corrupt member fails here, before
    anything is used). A ``ValueError`` naming ``path`` when it is not a readable ``.npz`` archive."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, expected a {what} (.npz)")
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such {what}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes), not a {what}")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable {what} ({type(err).__name__}: {err})") from None
    if isinstance(data, np.ndarray):
        raise ValueError(
            f"{path}: holds one bare array (.npy format), not a {what} (a .npz archive of named "
            f"arrays, as save_weights writes)"
        )
    try:
        with data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        if "allow_pickle" in str(err):
            raise ValueError(
                f"{path}: holds Python objects (pickled arrays), which minicnn never loads: a {what} "
                f"holds arrays of numbers"
            ) from None
        raise ValueError(f"{path}: corrupt or truncated {what} ({type(err).__name__}: {err})") from None


def check_array(value, label: str, source: str = "weights"):
    """``value`` as an array of finite numbers, else a ValueError naming ``label`` and ``source``."""
    if not hasattr(value, "__cuda_array_interface__"):
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{source}: {label} is not an array of numbers ({err})") from None
    if value.dtype.kind not in "iuf":
        raise ValueError(f"{source}: {label} holds {value.dtype} values, expected numbers")
    xp = backend_of(value).xp
    if value.dtype.kind == "f" and not bool(xp.isfinite(value).all()):
        bad = int((~xp.isfinite(value)).sum())
        raise ValueError(f"{source}: {label} holds {bad} NaN or infinite values")
    return value


def select_named(expected: list, arrays: dict, source: str, strict: bool = True) -> list:
    """Match ``arrays`` (``{"<layer>/<weight>": array}``) to the model's ``expected`` ``[(name, shape), ...]``.

    Returns one entry per expected weight: its array, or None where ``strict=False`` skipped it (absent or of
    another shape). Every array is checked (numbers, finite); with ``strict`` a missing or unknown name or a
    different shape is a ValueError naming it."""
    chosen = []
    for name, shape in expected:
        if name not in arrays:
            if strict:
                raise ValueError(
                    f"{source}: no weights for {name!r} (it holds {sorted(arrays)}); "
                    f"strict=False loads the weights that match"
                )
            chosen.append(None)
            continue
        value = check_array(arrays[name], repr(name), source)
        if tuple(value.shape) != tuple(shape):
            if strict:
                raise ValueError(
                    f"{source}: {name!r} has shape {tuple(value.shape)} in the file, the model expects {tuple(shape)}"
                )
            chosen.append(None)
            continue
        chosen.append(value)
    unknown = sorted(set(arrays) - {name for name, _ in expected})
    if unknown and strict:
        raise ValueError(f"{source}: holds weights the model does not have: {unknown}; strict=False ignores them")
    return chosen


def check_layers(recorded, layers, source: str) -> None:
    """Compare a file's list of ``"<name>:<type>"`` with the model's layers; a ValueError listing the first
    differences when they are not the same."""
    recorded = [str(item) for item in np.asarray(recorded).reshape(-1)]
    model = [f"{layer.name}:{type(layer).__name__}" for layer in layers]
    if recorded == model:
        return
    diffs = [
        f"layer {i}: file {a!r}, model {b!r}"
        for i, (a, b) in enumerate(zip(recorded + ["-"] * len(model), model + ["-"] * len(recorded)))
        if a != b
    ]
    raise ValueError(
        f"{source}: was saved from another architecture ({len(recorded)} layers, the model has "
        f"{len(model)}): {'; '.join(diffs[:3])}; strict=False loads the weights that match"
    )
