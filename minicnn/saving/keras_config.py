"""A Sequential model <-> Keras 3's model configuration (config.json of a ``.keras`` file, ``model.to_json()``).

Written as Keras 3.15 writes a Sequential: ``{"module": "keras", "class_name": "Sequential", "config": {"name",
"trainable", "dtype", "layers": [InputLayer, layer, ...], "build_input_shape"}, "build_config", "compile_config"}``.
Read back into a :class:`ModelSpec` (layers, name, dtype, input shape, compile arguments); the model itself is made
by :mod:`minicnn.models` (this module knows no model class). The compile configuration is restored where it maps
(the loss, the optimizer's name and settings, the accuracy metric); what does not map is skipped with a warning,
leaving the model uncompiled: Keras's optimizer state (its variables in model.weights.h5) is never read.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field

from .. import losses, optimizers
from .keras_layers import ModelConfigError, dtype_policy, keras_class, layer_from_keras, layer_to_keras

KERAS_VERSION = "3.15.1"  # the Keras whose layout minicnn writes
_OPTIMIZERS = {cls.__name__: cls for cls in optimizers.OPTIMIZERS.values()}  # Adadelta, SGD, Adam, AdamW, RMSprop
_LOSSES = {
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
}
# Keras optimizer settings that minicnn does not have: accepted only at their neutral value
_OPTIMIZER_NEUTRAL = {
    "name": None,
    "weight_decay": (None, 0, 0.0),
    "clipnorm": (None,),
    "global_clipnorm": (None,),
    "clipvalue": (None,),
    "use_ema": (False,),
    "ema_momentum": None,
    "ema_overwrite_frequency": (None,),
    "loss_scale_factor": (None,),
    "gradient_accumulation_steps": (None,),
}


@dataclass
class ModelSpec:
    """What a Keras model configuration says: the layers (unbuilt), the model's name and dtype, the input shape
    (batch axis excluded, or None when the configuration has none) and the compile arguments (or None)."""

    layers: list
    name: str = "sequential"
    dtype: str = "float32"
    input_shape: tuple | None = None
    compile_args: dict | None = field(default=None)


# --- minicnn -> Keras ------------------------------------------------------------------------------------
def model_config(model, include_compile: bool = True) -> dict:
    """Keras 3's configuration of ``model`` (a dict for ``json.dumps``)."""
    dtype = str(model.dtype)
    entries = [layer_to_keras(layer, dtype) for layer in model.layers]
    config = {"name": model.name, "trainable": True, "dtype": dtype_policy(dtype), "layers": entries}
    result = {"module": "keras", "class_name": "Sequential", "config": config, "registered_name": None}
    if model.built:
        batch_shape = [None, *model.input_shape]
        entries.insert(
            0,
            {
                "module": "keras.layers",
                "class_name": "InputLayer",
                "registered_name": None,
                "config": {
                    "batch_shape": batch_shape,
                    "dtype": dtype,
                    "sparse": False,
                    "ragged": False,
                    "name": "input_layer",
                    "optional": False,
                },
            },
        )
        config["build_input_shape"] = batch_shape
        result["build_config"] = {"input_shape": batch_shape}
    if include_compile and model.optimizer is not None and model.loss is not None:
        result["compile_config"] = compile_config(model)
    return result


def compile_config(model) -> dict:
    """Keras's ``compile_config``: the loss's name, the optimizer's class and settings, the metrics."""
    settings = model.optimizer.get_config()
    settings["name"] = settings["name"].lower()
    loss = model.loss
    name = getattr(loss, "name", type(loss).__name__)
    if getattr(loss, "from_logits", False):
        keras_name = {v: k for k, v in _LOSSES.items()}.get(name, name)
        name = {
            "module": "keras.losses",
            "class_name": keras_name,
            "registered_name": None,
            "config": {"name": name, "reduction": "sum_over_batch_size", "from_logits": True},
        }
    return {
        "optimizer": {
            "module": "keras.optimizers",
            "class_name": type(model.optimizer).__name__,
            "config": settings,
            "registered_name": None,
        },
        "loss": name,
        "loss_weights": None,
        "metrics": list(model.metrics) or None,
        "weighted_metrics": None,
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


# --- Keras -> minicnn ------------------------------------------------------------------------------------
def _dtype_of(value, where) -> str:
    name = value.get("config", {}).get("name") if isinstance(value, dict) else value
    if name not in ("float32", "float64"):
        raise ModelConfigError(f"{where}: dtype {name!r} is not supported (minicnn computes in float32 or float64)")
    return name


def _input_shape(entries, config, result, where):
    first = entries[0] if entries else None
    shape = None
    if isinstance(first, dict) and first.get("class_name") == "InputLayer":
        keras_class(first, f"{where} layer 0", kinds=("InputLayer",))
        cfg = first.get("config", {})
        shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
        entries = entries[1:]
    shape = shape or config.get("build_input_shape") or (result.get("build_config") or {}).get("input_shape")
    if shape is None:
        return entries, None
    if (
        not isinstance(shape, list)
        or len(shape) < 2
        or not all(isinstance(d, int) and 0 < d < 2**31 for d in shape[1:])
    ):
        raise ModelConfigError(f"{where}: the input shape {shape!r} is not [batch, positive sizes...]")
    return entries, tuple(shape[1:])


def model_spec(result, where: str, include_compile: bool = True) -> ModelSpec:
    """Read a Keras model configuration (config.json, or ``to_json()``'s dict) into a :class:`ModelSpec`."""
    kind = keras_class(result, where, kinds=("Sequential",))
    config = result.get("config", {})
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ModelConfigError(f"{where}: the Sequential config has no list of layers")
    dtype = _dtype_of(config.get("dtype", "float32"), f"{where} {kind}")
    entries, input_shape = _input_shape(entries, config, result, where)
    if not entries:
        raise ModelConfigError(f"{where}: the model has no layers")
    layers = []
    for i, entry in enumerate(entries):
        layer = layer_from_keras(entry, f"{where} layer {i}")
        layer_dtype = _dtype_of(entry["config"].get("dtype", dtype), f"{where} layer {i} ({layer.name})")
        if layer_dtype != dtype:
            raise ModelConfigError(
                f"{where}: layer {layer.name!r} computes in {layer_dtype}, the model in {dtype}; "
                f"minicnn needs one dtype for the whole model"
            )
        layers.append(layer)
    name = config.get("name", "sequential")
    if not isinstance(name, str) or not name.isprintable() or len(name) > 200:
        raise ModelConfigError(f"{where}: the model's name must be a printable string of at most 200 characters")
    compile_args = compile_arguments(result.get("compile_config"), where) if include_compile else None
    return ModelSpec(layers, name, dtype, input_shape, compile_args)


def weight_count(spec: ModelSpec) -> int:
    """How many weight values the layers of ``spec`` hold, from the configuration alone (nothing allocated): a
    file's configuration must not make the loader allocate more than the file's weights can fill."""
    shape, total = spec.input_shape, 0
    for layer in spec.layers:
        kind, channels = type(layer).__name__, shape[-1]
        if kind == "Conv2D":
            total += (layer.kernel_size[0] * layer.kernel_size[1] * channels + layer.use_bias) * layer.filters
        elif kind == "Dense":
            total += (channels + layer.use_bias) * layer.units
        elif kind == "BatchNormalization":
            total += (2 + layer.scale + layer.center) * channels
        shape = tuple(layer.compute_output_shape(shape))
    return total


def compile_arguments(config, where):
    """``model.compile`` keyword arguments from Keras's compile_config, or None (with a warning saying what did
    not map) when there is nothing to compile or something does not map."""
    if not config:
        return None
    try:
        return {
            "loss": _loss(config.get("loss")),
            "optimizer": _optimizer(config.get("optimizer")),
            "metrics": _metrics(config.get("metrics")),
        }
    except (ModelConfigError, TypeError, ValueError) as err:
        warnings.warn(f"{where}: the model is loaded uncompiled: {err}", stacklevel=3)
        return None


def _loss(value):
    if isinstance(value, str) and value in losses.LOSSES:
        return value
    if isinstance(value, dict):
        name = keras_class(value, "loss", kinds=tuple(_LOSSES))
        cfg = value.get("config", {})
        if cfg.get("label_smoothing", 0) or cfg.get("axis", -1) != -1:
            raise ModelConfigError(f"loss {name} with label_smoothing or axis is not supported")
        return losses.LOSSES[_LOSSES[name]](from_logits=bool(cfg.get("from_logits", False)))
    raise ModelConfigError(f"loss {value!r} is not supported (minicnn has {', '.join(losses.LOSSES)})")


def _optimizer(value):
    name = keras_class(value, "optimizer", kinds=tuple(_OPTIMIZERS))
    cls, cfg = _OPTIMIZERS[name], dict(value.get("config", {}))
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    for key, setting in cfg.items():
        if key in accepted:
            continue
        if key not in _OPTIMIZER_NEUTRAL or (
            _OPTIMIZER_NEUTRAL[key] is not None and setting not in _OPTIMIZER_NEUTRAL[key]
        ):
            raise ModelConfigError(f"optimizer {name} setting {key}={setting!r} is not supported")
    kwargs = {k: v for k, v in cfg.items() if k in accepted}
    if not isinstance(kwargs.get("learning_rate", 1.0), (int, float)):
        raise ModelConfigError(f"optimizer {name}: a learning-rate schedule is not supported")
    return cls(**kwargs)


def _metrics(value):
    metrics = value or []
    if not isinstance(metrics, list) or any(m not in ("accuracy", "acc") for m in metrics):
        raise ModelConfigError(f"metrics {value!r}: minicnn has accuracy only")
    return metrics
