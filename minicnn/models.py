"""Whole models in Keras's formats, Keras's ``keras.models`` functions: :func:`load_model` opens a ``.keras`` file
(written by :meth:`Sequential.save <minicnn.Sequential.save>` or by Keras 3) and :func:`model_from_json` rebuilds a
model from its JSON configuration (weights drawn anew). See docs/model_files.md for the format and the checks.

Example:
    >>> import minicnn as mc
    >>> model = mc.Sequential([mc.layers.Dense(3, activation="softmax", input_shape=(4,))], seed=0)
    >>> same = mc.models.model_from_json(model.to_json(), seed=0)
    >>> [layer.name for layer in same.layers], same.input_shape
    (['dense'], (4,))
"""

from __future__ import annotations

import os

from .model import Sequential
from .saving import Limits, ModelFileError, check_size, read_keras_file, read_weights, restore_optimizer, spec_from_json

__all__ = ["load_model", "model_from_json", "Limits", "ModelFileError"]


def _build(spec, seed=None, backend=None) -> Sequential:
    if spec.input_shape is not None:
        spec.layers[0].input_shape = spec.input_shape
    model = Sequential(spec.layers, name=spec.name, dtype=spec.dtype, seed=seed, backend=backend)
    if spec.compile_args:
        model.compile(**spec.compile_args)
    return model


def load_model(path, compile: bool = True, backend=None, limits: Limits | None = None) -> Sequential:
    """The model saved in the ``.keras`` file at ``path``, with its weights (and, with ``compile``, its loss,
    optimizer settings, metrics and the optimizer's state, where they map).

    Refuses, with a :class:`ModelFileError` naming the file and the problem: a layer minicnn does not have (named),
    a custom object, a damaged, oversized (``limits``) or inconsistent archive (a weight missing, extra, of another
    shape or dtype, or not finite)."""
    spec, archive = read_keras_file(path, limits, compile=compile)
    source = os.fspath(path)
    if spec.input_shape is None:
        raise ModelFileError(f"{source}: config.json gives no input shape (the model was saved unbuilt)")
    check_size(spec, len(archive.weights), f"{source}: config.json")
    try:
        model = _build(spec, backend=backend)
    except ValueError as err:  # shapes that do not fit together (e.g. a Dense after an image)
        raise ModelFileError(f"{source}: config.json: {err}") from None
    model.set_weights(read_weights(archive.weights, model, source))
    if model.optimizer is not None:
        restore_optimizer(model, archive, source)
    return model


def model_from_json(json_string: str, seed=None, backend=None) -> Sequential:
    """A new (uncompiled) model from :meth:`Sequential.to_json`'s (or Keras's ``to_json()``'s) text; its weights are
    drawn from ``seed`` as for any new model."""
    return _build(spec_from_json(json_string), seed=seed, backend=backend)
