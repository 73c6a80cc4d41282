"""Whole-model files in Keras 3's format: ``.keras`` archives and the model's JSON configuration.

A model file is data, never code: reading one imports nothing named in it, unpickles nothing, runs no Lambda, opens
the archive in memory, and checks every member before use (see :mod:`.archive` and :mod:`.weights_h5`).
The model classes live above this package: :mod:`minicnn.models` builds a model from what is read here.
"""

from __future__ import annotations

import datetime
import json
import os

from ..utils import atomic_write
from .archive import KerasArchive, Limits, ModelFileError, parse_json, read_archive, write_archive
from .keras_config import KERAS_VERSION, ModelSpec, model_config, model_spec, weight_count
from .keras_layers import SUPPORTED_LAYERS, ModelConfigError
from .optimizer_state import set_from_keras
from .weights_h5 import read_optimizer_state, read_weights, require_h5py, weights_bytes

__all__ = [
    "save_model",
    "model_to_json",
    "spec_from_json",
    "read_keras_file",
    "read_weights",
    "restore_optimizer",
    "KerasArchive",
    "Limits",
    "ModelFileError",
    "ModelConfigError",
    "ModelSpec",
    "SUPPORTED_LAYERS",
    "KERAS_VERSION",
    "check_size",
]


def save_model(model, path) -> None:
    """Write ``model`` (built) to ``path``, a ``.keras`` file Keras 3 opens with ``keras.models.load_model``:
    its configuration (with the compile settings), its weights, and metadata; written atomically."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: a whole-model file ends in .keras (for weights only, use save_weights with .npz)")
    require_h5py()
    if not model.built:
        raise ValueError("the model is not built: give the first layer an input_shape=(...) or call model.build()")
    config = model_config(model)
    metadata = {
        "keras_version": KERAS_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "saved_by": "minicnn",
    }
    weights = weights_bytes(model)
    atomic_write(path, lambda fh: write_archive(fh, config, metadata, weights))


def model_to_json(model, **kwargs) -> str:
    """The model's Keras 3 configuration as JSON (``keras.models.model_from_json`` reads it); ``kwargs`` go to
    ``json.dumps`` (``indent=2``)."""
    return json.dumps(model_config(model, include_compile=False), **kwargs)


def spec_from_json(text: str) -> ModelSpec:
    """The :class:`ModelSpec` of a Keras model configuration in JSON (``model.to_json()``'s, Keras's or ours)."""
    spec = model_spec(parse_json(text, "model JSON", "the JSON text"), "model JSON", include_compile=False)
    check_size(spec, Limits().weights_bytes, "model JSON")
    return spec


def read_keras_file(path, limits: Limits | None = None, compile: bool = True) -> tuple[ModelSpec, KerasArchive]:
    """The checked archive at ``path`` and the :class:`ModelSpec` its config.json describes (no weights read yet:
    they need the model, see :func:`read_weights`)."""
    archive = read_archive(path, limits)
    source = os.fspath(path)
    try:
        spec = model_spec(archive.config, f"{source}: config.json", include_compile=compile)
    except ModelConfigError as err:
        raise ModelFileError(str(err)) from None
    return spec, archive


def check_size(spec: ModelSpec, available_bytes: int, source: str) -> None:
    """Refuse a configuration whose weights would take more than ``available_bytes`` (what the file's weights member
    holds, or a limit): checked before the model, and its arrays, are made."""
    if spec.input_shape is None:
        return
    try:
        count = weight_count(spec)
    except ValueError as err:  # shapes that do not fit together (e.g. a Dense after an image)
        raise ModelFileError(f"{source}: {err}") from None
    needed = count * (8 if spec.dtype == "float64" else 4)
    if needed > available_bytes:
        raise ModelFileError(
            f"{source}: the configuration describes {count:,} weights ({needed:,} bytes), more than "
            f"the {available_bytes:,} bytes there are for them"
        )


def restore_optimizer(model, archive: KerasArchive, source: str) -> bool:
    """Set ``model``'s optimizer state from the archive's (Keras's layout), when there is one that fits; True if so."""
    state = read_optimizer_state(archive.weights, model, source)
    if state is not None:
        set_from_keras(model.optimizer, state, model.trainable_weights)
    return state is not None
