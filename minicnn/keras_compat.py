"""Loading Keras weights into the matching minicnn model.

minicnn lays weights out as Keras does (Conv2D kernel ``(kh, kw, in, out)``, Dense kernel ``(in, out)``, Flatten
in (H, W, C) order, channels_last), so weights move across as they are, after a check that the two models have
the same architecture:

    >>> import keras                                              # doctest: +SKIP
    >>> from minicnn.keras_compat import load_keras_weights       # doctest: +SKIP
    >>> load_keras_weights(minicnn_model, keras_model)            # a Keras model object   # doctest: +SKIP
    >>> load_keras_weights(minicnn_model, "tutorial.weights.h5")  # or Keras 3's weights file  # doctest: +SKIP

A mismatch raises ``ValueError`` naming the first layer that differs (its type, units/filters, kernel size,
strides, padding, activation, or its weight shapes).
"""

from __future__ import annotations

import os

import numpy as np

# Keras class name -> minicnn class name (the same here) and the settings that must agree
_COMPARED = {
    "Conv2D": ("filters", "kernel_size", "strides", "padding", "activation", "use_bias"),
    "Dense": ("units", "activation", "use_bias"),
    "MaxPooling2D": ("pool_size", "strides", "padding"),
    "Dropout": ("rate",),
    "Flatten": (),
    "Activation": ("activation",),
    "BatchNormalization": ("axis", "momentum", "epsilon", "center", "scale"),
    "AveragePooling2D": ("pool_size", "strides", "padding"),
    "GlobalAveragePooling2D": ("keepdims",),
    "GlobalMaxPooling2D": ("keepdims",),
    "ZeroPadding2D": ("padding",),
    "Reshape": ("target_shape",),
}
_SKIPPED_KERAS = ("InputLayer",)


def _normalise(key, value):
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, tuple):  # ZeroPadding2D's ((top, bottom), (left, right)), read back from JSON as lists
        value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    if key == "activation" and value is None:
        return "linear"
    if key in ("kernel_size", "strides", "pool_size") and isinstance(value, int):
        return (value, value)
    if key in ("rate", "momentum", "epsilon"):
        return round(float(value), 7)
    return value


def _minicnn_settings(layer):
    settings = {}
    for key in _COMPARED.get(type(layer).__name__, ()):
        settings[key] = _normalise(key, getattr(layer, key))
    return settings


def _keras_layers(keras_model):
    return [layer for layer in keras_model.layers if type(layer).__name__ not in _SKIPPED_KERAS]


def check_architecture(model, keras_model) -> None:
    """Raise ValueError naming the first layer where ``model`` (minicnn) and ``keras_model`` differ."""
    ours, theirs = model.layers, _keras_layers(keras_model)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        kind_a, kind_b = type(a).__name__, type(b).__name__
        where = f"layer {i} (minicnn {a.name!r} {kind_a}, Keras {b.name!r} {kind_b})"
        if kind_a != kind_b or kind_a not in _COMPARED:
            raise ValueError(f"architectures differ at {where}: different layer types")
        config = b.get_config()
        for key, value in _minicnn_settings(a).items():
            other = _normalise(key, config.get(key))
            if value != other:
                raise ValueError(f"architectures differ at {where}: {key} is {value!r} in minicnn, {other!r} in Keras")
        shapes_a = [tuple(p.shape) for p in a.params.values()]
        shapes_b = [tuple(w.shape) for w in b.get_weights()]
        if shapes_a != shapes_b:
            raise ValueError(
                f"architectures differ at {where}: weight shapes {shapes_a} in minicnn, {shapes_b} in Keras"
            )
    if len(ours) != len(theirs):
        extra = theirs[len(ours)] if len(theirs) > len(ours) else ours[len(theirs)]
        raise ValueError(
            f"architectures differ: minicnn has {len(ours)} layers, Keras {len(theirs)}; the first "
            f"unmatched layer is {extra.name!r} ({type(extra).__name__})"
        )


def _read_weights_h5(path):
    """The weight arrays of a Keras 3 ``.weights.h5`` file, per layer in file order: {layer name: [arrays]}."""
    try:
        import h5py
    except ImportError as err:
        raise ImportError("reading .weights.h5 files needs h5py: pip install h5py (Keras installs it)") from err
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such weights file")
    layers = {}
    with h5py.File(path, "r") as f:
        if "layers" not in f:
            raise ValueError(f"{path}: not a Keras 3 weights file (no 'layers' group)")

        def visit(group, prefix):
            if "vars" in group and len(group["vars"]):
                layers[prefix] = [np.array(group["vars"][str(k)]) for k in range(len(group["vars"]))]
            for name in group:
                if name != "vars" and isinstance(group[name], h5py.Group):
                    visit(group[name], f"{prefix}/{name}" if prefix else name)

        visit(f["layers"], "")
    return layers


def load_keras_weights(model, source) -> None:
    """Load the weights of a Keras model object, or of a Keras 3 ``.weights.h5`` file, into ``model``.

    A model object is checked layer by layer (types, settings, weight shapes) before anything is loaded. A file
    holds only weights: its weighted layers are matched with ``model``'s by name when the names agree (the file
    lists its layers alphabetically, not in model order), else in order, and their shapes compared.
    """
    if isinstance(source, (str, os.PathLike)):
        stored = _read_weights_h5(os.fspath(source))
        weighted = [layer for layer in model.layers if layer.params]
        if len(stored) != len(weighted):
            raise ValueError(
                f"{source}: holds weights for {len(stored)} layers ({', '.join(stored)}), the model "
                f"has {len(weighted)} layers with weights"
            )
        if set(stored) == {layer.name for layer in weighted}:
            stored = {layer.name: stored[layer.name] for layer in weighted}
        weights = []
        for layer, (name, arrays) in zip(weighted, stored.items()):
            expected = [tuple(p.shape) for p in layer.params.values()]
            found = [a.shape for a in arrays]
            if expected != found:
                raise ValueError(
                    f"{source}: layer {name!r} holds shapes {found}, the model's {layer.name!r} "
                    f"({type(layer).__name__}) expects {expected}"
                )
            weights += arrays
        model.set_weights(weights)
        return
    check_architecture(model, source)
    model.set_weights(source.get_weights())


def compare_arrays(ours, theirs, what: str, rtol: float = 1e-5, atol: float = 1e-6) -> float:
    """Assert ``ours`` equals ``theirs`` elementwise to ``|a - b| <= max(rtol * |b|, atol)``; return the largest
    relative difference ``|a - b| / max(|b|, atol / rtol)``. On failure the AssertionError says ``what`` (layer and
    quantity), the largest difference and where it is."""
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes differ, minicnn {a.shape} vs Keras {b.shape}")
    diff = np.abs(a - b)
    rel = diff / np.maximum(np.abs(b), atol / rtol)
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape) if rel.size else ()
    if rel.size and rel[worst] > rtol:
        raise AssertionError(
            f"{what}: largest relative difference {rel[worst]:.3g} (absolute {diff[worst]:.3g}) at "
            f"index {tuple(int(i) for i in worst)}: minicnn {a[worst]!r} vs Keras {b[worst]!r} "
            f"(tolerance: relative {rtol:g}, or absolute {atol:g} near zero)"
        )
    return float(rel[worst]) if rel.size else 0.0
