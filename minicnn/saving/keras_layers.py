"""One layer <-> its Keras 3 configuration (the ``{"module", "class_name", "config"}`` entries of config.json).

Only the layers minicnn has are read; any other class (``Lambda`` included) is refused by name, and so is any
setting minicnn does not compute (dilation, groups, constraints, a channels_first layout, ...): a setting left at
its neutral value (None, False, 1, "channels_last") is accepted, anything else is an error naming it. Initializers
other than glorot_uniform, he_normal, zeros and ones are read as the layer's default: they only matter to weights
drawn anew, never to weights read from a file.
"""

from __future__ import annotations

import re

from .. import initializers, regularizers
from .. import layers as L

SUPPORTED_LAYERS = (
    "Conv2D",
    "Dense",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "ZeroPadding2D",
    "Reshape",
    "Flatten",
    "Dropout",
    "BatchNormalization",
    "Activation",
)
_CLASSES = {name: getattr(L, name) for name in SUPPORTED_LAYERS}

# Keras initializer class <-> minicnn initializer name
_INITIALIZERS = {"GlorotUniform": "glorot_uniform", "HeNormal": "he_normal", "Zeros": "zeros", "Ones": "ones"}
# what each layer's Keras config holds beyond name/trainable/dtype, read into minicnn arguments
_ARGS = {
    "Conv2D": (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
    ),
    "Dense": (
        "units",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
    ),
    "MaxPooling2D": ("pool_size", "strides", "padding"),
    "AveragePooling2D": ("pool_size", "strides", "padding"),
    "GlobalAveragePooling2D": ("keepdims",),
    "GlobalMaxPooling2D": ("keepdims",),
    "ZeroPadding2D": ("padding",),
    "Reshape": ("target_shape",),
    "Flatten": (),
    "Dropout": ("rate", "seed"),
    "BatchNormalization": (
        "axis",
        "momentum",
        "epsilon",
        "center",
        "scale",
        "beta_initializer",
        "gamma_initializer",
        "moving_mean_initializer",
        "moving_variance_initializer",
    ),
    "Activation": ("activation",),
}
# settings minicnn accepts only at their neutral value (anything else changes what the layer computes)
_NEUTRAL = {
    "data_format": ("channels_last", None),
    "dilation_rate": (1, [1, 1], (1, 1)),
    "groups": (1,),
    "synchronized": (False, True),
}  # synchronized: only matters across several devices
_IGNORED = {"name", "trainable", "dtype", "renorm_momentum"}  # renorm_momentum is unused while renorm is False


class ModelConfigError(ValueError):
    """A model configuration minicnn cannot read (the message names the layer and the setting)."""


def keras_class(entry, where: str, kinds=SUPPORTED_LAYERS, module_prefix="keras") -> str:
    """The ``class_name`` of a serialized Keras object, refused unless it is one of ``kinds`` and a built-in (no
    ``registered_name`` of a custom object, no module outside Keras): nothing is ever imported from a file."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ModelConfigError(
            f"{where}: expected a Keras object {{'class_name': ..., 'config': ...}}, got {_short(entry)}"
        )
    name = entry["class_name"]
    module = entry.get("module")
    registered = entry.get("registered_name")
    if (
        module is not None and not (isinstance(module, str) and module.split(".")[0] == module_prefix)
    ) or registered not in (None, name):
        raise ModelConfigError(
            f"{where}: {_short(name)} is a custom object (module {module!r}, registered name "
            f"{registered!r}); a model file is data, minicnn imports nothing from it"
        )
    if name not in kinds:
        raise ModelConfigError(
            f"{where}: layer {_short(name)} is not supported by minicnn (it reads {', '.join(kinds)})"
        )
    if not isinstance(entry.get("config", {}), dict):
        raise ModelConfigError(f"{where}: the config of {name} is not a JSON object")
    return name


def _short(value, limit=80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def keras_path_names(class_names) -> list[str]:
    """Where Keras 3 stores each layer's weights in model.weights.h5: ``layers/<snake_case class name>`` with a
    counter for repeats (``conv2d``, ``conv2d_1``; Keras's saving_lib names them by class, not by layer name)."""
    used, paths = {}, []
    for name in class_names:
        snake = re.sub("([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()
        count = used.get(snake)
        used[snake] = 0 if count is None else count + 1
        paths.append(snake if count is None else f"{snake}_{count + 1}")
    return paths


# --- minicnn -> Keras ------------------------------------------------------------------------------------
def _serialized(module, class_name, config) -> dict:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _initializer_to_keras(fn):
    names = {v: k for k, v in initializers.INITIALIZERS.items()}
    keras_name = {v: k for k, v in _INITIALIZERS.items()}[names.get(fn, "glorot_uniform")]
    config = {"seed": None} if keras_name in ("GlorotUniform", "HeNormal") else {}
    return _serialized("keras.initializers", keras_name, config)


def _regularizer_to_keras(reg):
    return None if reg is None else _serialized("keras.regularizers", type(reg).__name__, reg.get_config())


def dtype_policy(dtype) -> dict:
    return _serialized("keras", "DTypePolicy", {"name": str(dtype)})


def layer_to_keras(layer, dtype) -> dict:
    """The Keras 3 config entry of a minicnn layer (built: its input shape goes into ``build_config``)."""
    kind = type(layer).__name__
    if kind not in _CLASSES:
        raise ModelConfigError(
            f"layer {layer.name!r} ({kind}) has no Keras equivalent minicnn can write "
            f"(supported: {', '.join(SUPPORTED_LAYERS)})"
        )
    config = {"name": layer.name, "trainable": bool(layer.trainable), "dtype": dtype_policy(dtype)}
    for key in _ARGS[kind]:
        value = getattr(layer, key)
        if key.endswith("_initializer"):
            value = _initializer_to_keras(value)
        elif key.endswith("_regularizer"):
            value = _regularizer_to_keras(value)
        elif isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        config[key] = value
    if kind in (
        "Conv2D",
        "MaxPooling2D",
        "AveragePooling2D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling2D",
        "ZeroPadding2D",
        "Flatten",
    ):
        config["data_format"] = "channels_last"
    if kind == "Conv2D":
        config.update(dilation_rate=[1, 1], groups=1)
    entry = _serialized("keras.layers", kind, config)
    if layer.built:
        entry["build_config"] = {"input_shape": [None, *layer.input_shape]}
    return entry


# --- Keras -> minicnn ------------------------------------------------------------------------------------
def _initializer_from_keras(value, default):
    if isinstance(value, str):
        return value if value in initializers.INITIALIZERS else default
    if isinstance(value, dict):
        return _INITIALIZERS.get(value.get("class_name"), default)
    return default


def _regularizer_from_keras(value, where):
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in regularizers.REGULARIZERS:
        return regularizers.get(value)
    name = keras_class(value, where, kinds=("L1", "L2", "L1L2"))
    config = value.get("config", {})
    try:
        return getattr(regularizers, name)(**{k: float(config[k]) for k in ("l1", "l2") if k in config})
    except (TypeError, ValueError) as err:
        raise ModelConfigError(f"{where}: {name} regularizer {_short(config)}: {err}") from None


def _argument(kind, key, value, where):
    if key.endswith("_initializer"):
        defaults = {
            "gamma_initializer": "ones",
            "moving_variance_initializer": "ones",
            "kernel_initializer": "glorot_uniform",
        }
        return _initializer_from_keras(value, defaults.get(key, "zeros"))
    if key.endswith("_regularizer"):
        return _regularizer_from_keras(value, f"{where} {key}")
    if key == "activation" and value is not None and not isinstance(value, str):
        raise ModelConfigError(
            f"{where}: activation {_short(value)} is not a built-in activation name; minicnn "
            f"reads linear, relu, sigmoid, tanh, softmax"
        )
    if isinstance(value, list):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return value


def layer_from_keras(entry, where: str):
    """A minicnn layer (unbuilt) from a Keras 3 config entry; refuses unsupported layers and settings by name."""
    kind = keras_class(entry, where)
    config = entry.get("config", {})
    where = f"{where} ({kind} {_short(config.get('name'))})"
    args = _ARGS[kind]
    for key, value in config.items():
        if key in args or key in _IGNORED:
            continue
        if value in _NEUTRAL.get(key, (None, False)):
            continue
        raise ModelConfigError(f"{where}: setting {key}={_short(value)} is not supported by minicnn")
    kwargs = {key: _argument(kind, key, config[key], where) for key in args if key in config}
    name = config.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 200 or not name.isprintable()):
        raise ModelConfigError(f"{where}: a layer name must be a printable string of 1 to 200 characters")
    try:
        layer = _CLASSES[kind](name=name, **kwargs)
    except (TypeError, ValueError) as err:
        raise ModelConfigError(f"{where}: {err}") from None
    trainable = config.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ModelConfigError(f"{where}: trainable must be true or false, got {_short(trainable)}")
    layer.trainable = trainable
    return layer
