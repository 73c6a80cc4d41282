"""model.weights.h5 inside a ``.keras`` file, in Keras 3's layout, written and read in memory with h5py.

Layout (Keras 3's saving_lib, for a Sequential)::

    /layers/<path>/vars/0, 1, ...     each layer's weights in Keras's order (trainable first), path by class name
    /vars                             the model's own (none); attribute name = the model's name
    /optimizer/vars/...               the optimizer's state, as Keras keeps it (see optimizer_state.py)

Reading checks, before any value is used: every link is a plain (hard) link, never an external or soft one (so
nothing outside the archive is opened); every weight is a plain dataset (no external storage, no virtual dataset, no
filter) of the model's float dtype and of the shape the configuration implies; no weight is missing or extra;
every value is finite. A problem is a :class:`~minicnn.saving.archive.ModelFileError` naming the file and the weight.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from .archive import WEIGHTS, ModelFileError
from .keras_layers import keras_path_names
from .optimizer_state import keras_layout, keras_optimizer_variables

EXTRA_NAME = "keras-files"  # the pip extra that installs h5py


def require_h5py():
    """h5py, or an ImportError that says how to install it."""
    try:
        import h5py
    except ImportError as err:
        raise ImportError(
            f"reading and writing .keras files needs h5py: pip install 'minicnn[{EXTRA_NAME}]' (or pip install h5py)"
        ) from err
    return h5py


def weights_bytes(model) -> bytes:
    """model.weights.h5 for ``model``, as bytes."""
    h5py = require_h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        group = f.create_group("layers")
        for layer, path in zip(model.layers, keras_path_names(type(layer).__name__ for layer in model.layers)):
            variables = group.create_group(path).create_group("vars")
            variables.attrs["name"] = layer.name
            for i, key in enumerate(layer.weight_names()):
                variables.create_dataset(str(i), data=model.backend.to_numpy(layer.params[key]))
        f.create_group("vars").attrs["name"] = model.name
        state = (
            None
            if model.optimizer is None
            else keras_optimizer_variables(model.optimizer, model.trainable_weights, model.backend.to_numpy)
        )
        if state:
            variables = f.create_group("optimizer").create_group("vars")
            variables.attrs["name"] = keras_path_names([type(model.optimizer).__name__])[0]
            for i, value in enumerate(state):
                variables.create_dataset(str(i), data=value)
    return buffer.getvalue()


def _refuse(source, problem):
    raise ModelFileError(f"{source}: {WEIGHTS}: {problem}")


def _child(h5py, group, name, source, where):
    """``group[name]`` if it exists, after checking that it is a plain link inside the file."""
    link = group.get(name, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        _refuse(
            source,
            f"{where}/{name} is a link ({type(link).__name__}), not a plain member (links to other "
            f"files or paths are refused)",
        )
    return group[name]


def _dataset(h5py, ds, expected_shape, dtype, source, where):
    if not isinstance(ds, h5py.Dataset):
        _refuse(source, f"{where} is not a dataset")
    if ds.is_virtual or ds.external:
        _refuse(source, f"{where} keeps its data outside the file (a virtual or external dataset)")
    if ds.id.get_create_plist().get_nfilters():
        _refuse(source, f"{where} is filtered (compressed); minicnn reads plain datasets only")
    if ds.dtype != dtype:
        _refuse(source, f"{where} holds {ds.dtype}, the model computes in {dtype}")
    if tuple(ds.shape) != tuple(expected_shape):
        _refuse(source, f"{where} has shape {tuple(ds.shape)}, the configuration implies {tuple(expected_shape)}")
    value = ds[()]
    if not np.isfinite(value).all():
        _refuse(source, f"{where} holds non-finite values (NaN or infinity)")
    return value


def _open(h5py, data, source):
    try:
        return h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{source}: {WEIGHTS} is not a readable HDF5 file ({err})") from None


def read_weights(data: bytes, model, source) -> list[np.ndarray]:
    """Every weight of ``model`` (built from the file's configuration) from model.weights.h5's bytes, in Keras's
    order, after the checks of the module's docstring."""
    h5py = require_h5py()
    paths = keras_path_names(type(layer).__name__ for layer in model.layers)
    dtype = np.dtype(model.dtype)
    weights = []
    with _open(h5py, data, source) as f:
        try:
            layers = _child(h5py, f, "layers", source, "")
            if not isinstance(layers, h5py.Group):
                _refuse(source, "no 'layers' group (not Keras 3's layout)")
            for name in layers:
                if name not in paths:  # a layer without weights may leave an empty group; anything else is extra
                    group = _child(h5py, layers, name, source, "/layers")
                    variables = (
                        _child(h5py, group, "vars", source, f"/layers/{name}")
                        if isinstance(group, h5py.Group) and set(group) == {"vars"}
                        else None
                    )
                    if not isinstance(variables, h5py.Group) or len(variables):
                        _refuse(source, f"/layers/{name} holds weights for no layer of the configuration")
            for layer, path in zip(model.layers, paths):
                weights += _layer_weights(h5py, layers, layer, path, dtype, source)
        except (OSError, KeyError, TypeError) as err:  # h5py's errors on a damaged file
            raise ModelFileError(f"{source}: {WEIGHTS} is damaged ({err})") from None
    return weights


def _layer_weights(h5py, layers, layer, path, dtype, source):
    where = f"/layers/{path}"
    expected = [tuple(layer.params[key].shape) for key in layer.weight_names()]
    group = _child(h5py, layers, path, source, "/layers")
    if group is None:
        if expected:
            _refuse(source, f"no weights for layer {layer.name!r} ({type(layer).__name__}, expected at {where})")
        return []
    if not isinstance(group, h5py.Group) or set(group) - {"vars"}:
        _refuse(
            source,
            f"{where} holds {sorted(group)[:5] if isinstance(group, h5py.Group) else 'a dataset'}, "
            f"expected only 'vars'",
        )
    variables = _child(h5py, group, "vars", source, where)
    if variables is None and not expected:
        return []
    if not isinstance(variables, h5py.Group):
        _refuse(source, f"{where}/vars is missing or not a group")
    names = sorted(variables)
    wanted = [str(i) for i in range(len(expected))]
    if sorted(names) != sorted(wanted):
        _refuse(
            source,
            f"layer {layer.name!r} ({type(layer).__name__}) has {len(names)} weights "
            f"({', '.join(names[:6])}) in the file, the configuration implies {len(expected)}",
        )
    return [
        _dataset(
            h5py,
            _child(h5py, variables, str(i), source, f"{where}/vars"),
            shape,
            dtype,
            source,
            f"{where}/vars/{i} (layer {layer.name!r})",
        )
        for i, shape in enumerate(expected)
    ]


def read_optimizer_state(data: bytes, model, source) -> list[np.ndarray] | None:
    """The arrays of ``/optimizer/vars`` for ``model``'s (compiled) optimizer, checked as the weights are; None when
    there are none, or (with a warning) when they are laid out for another optimizer or other settings."""
    layout = None if model.optimizer is None else keras_layout(model.optimizer, model.trainable_weights)
    if layout is None:
        return None
    h5py = require_h5py()
    with _open(h5py, data, source) as f:
        try:
            group = _child(h5py, f, "optimizer", source, "")
            variables = _child(h5py, group, "vars", source, "/optimizer") if isinstance(group, h5py.Group) else None
            if not isinstance(variables, h5py.Group):
                return None
            if sorted(variables) != sorted(str(i) for i in range(len(layout))):
                warnings.warn(
                    f"{source}: the optimizer's state holds {len(variables)} arrays where "
                    f"{type(model.optimizer).__name__} with these settings keeps {len(layout)}: the "
                    f"optimizer starts afresh",
                    stacklevel=3,
                )
                return None
            return [
                _dataset(
                    h5py,
                    _child(h5py, variables, str(i), source, "/optimizer/vars"),
                    shape,
                    dtype,
                    source,
                    f"/optimizer/vars/{i}",
                )
                for i, (shape, dtype) in enumerate(layout)
            ]
        except (OSError, KeyError, TypeError) as err:
            raise ModelFileError(f"{source}: {WEIGHTS} is damaged ({err})") from None
