"""A Sequential model as an ONNX graph for inference (ONNX Runtime, ``onnx.reference``, Netron), opset 17.

The graph takes Keras's input, ``input`` of shape ``(N, H, W, C)`` float32 (N free), and gives Keras's output,
``output``. ONNX's image operators work in NCHW, minicnn in NHWC, so the graph carries a layout along::

    NHWC --Transpose(0, 3, 1, 2)--> NCHW     before Conv, MaxPool, AveragePool, global pooling, Pad, 4-D BatchNorm
    NCHW --Transpose(0, 2, 3, 1)--> NHWC     before Flatten, Reshape, Dense and at the output

so that Flatten still joins (H, W, C) in Keras's order and a Dense kernel reads its inputs as in training. Each
layer becomes (weights as initializers, float32):

==================  ============================================================================================
Conv2D              Conv (kernel (KH, KW, C, F) -> (F, C, KH, KW), explicit pads for "same") + activation
Dense               Gemm (kernel (D, U) as it is) + activation
MaxPooling2D        MaxPool, after a Pad of -inf for "same" (padding never wins a window; MaxPool's own pads are
                    mis-sized by onnx.reference 1.23 when they are uneven and the stride is 1)
AveragePooling2D    AveragePool with count_include_pad=0 (padding not counted, as Keras)
Global*Pooling2D    GlobalAveragePool / GlobalMaxPool, then Flatten unless keepdims
ZeroPadding2D       Pad (constant 0)
BatchNormalization  BatchNormalization in inference mode (the moving mean and variance)
Dropout             nothing (identity at inference)
Flatten, Reshape    Flatten, Reshape (in Keras's NHWC order)
Activation          Relu, Sigmoid, Tanh, Softmax (over Keras's last axis: axis 1 in NCHW)
==================  ============================================================================================
"""

from __future__ import annotations

import os

import numpy as np

OPSET = 17
IR_VERSION = 8  # the IR that opset 17 came with: readable by ONNX Runtime 1.13 and later
EXTRA_NAME = "onnx"  # the pip extra that installs onnx (and onnxruntime, to run the graph)
_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}
_NCHW_LAYERS = (
    "Conv2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "ZeroPadding2D",
)


def require_onnx():
    """The onnx package, or an ImportError that says how to install it."""
    try:
        import onnx
    except ImportError as err:
        raise ImportError(f"exporting to ONNX needs the onnx package: pip install 'minicnn[{EXTRA_NAME}]'") from err
    return onnx


class _Graph:
    """The nodes and initializers built so far, and the current tensor with its layout ("nhwc" or "nchw")."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []
        self.tensor, self.layout, self.count = "input", "nhwc", 0

    def fresh(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, hint, value):
        name = self.fresh(hint)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def add(self, op, inputs=(), name_hint=None, **attributes):
        """Append ``op`` on the current tensor (plus ``inputs``); its output becomes the current tensor."""
        out = self.fresh(name_hint or op.lower())
        self.nodes.append(self.helper.make_node(op, [self.tensor, *inputs], [out], name=out, **attributes))
        self.tensor = out
        return out

    def to(self, layout, rank):
        """Transpose the current 4-D tensor into ``layout`` if it is in the other one."""
        if rank == 4 and self.layout != layout:
            self.add("Transpose", perm=[0, 3, 1, 2] if layout == "nchw" else [0, 2, 3, 1])
        self.layout = layout


def _pads(window):
    """ONNX's pads [top, left, bottom, right] from a minicnn Window."""
    return [window.pad_top, window.pad_left, window.pad_bottom, window.pad_right]


def _activation(g, name, rank):
    if name in (None, "linear"):
        return
    attributes = {"axis": 1 if (g.layout == "nchw" and rank == 4) else -1} if name == "softmax" else {}
    g.add(_ACTIVATIONS[name], **attributes)


def _layer(g, layer, weights):
    """Append the nodes of one layer (``weights``: its host arrays by name, float32)."""
    kind, rank_in, rank_out = type(layer).__name__, len(layer.input_shape) + 1, len(layer.output_shape) + 1
    if kind in _NCHW_LAYERS or (kind == "BatchNormalization" and rank_in == 4):
        g.to("nchw", rank_in)
    elif kind in ("Flatten", "Reshape", "Dense"):
        g.to("nhwc", rank_in)
    if kind == "Conv2D":
        kernel = g.constant("kernel", weights["kernel"].transpose(3, 2, 0, 1))
        bias = [g.constant("bias", weights["bias"])] if layer.use_bias else []
        w = layer.window
        g.add("Conv", [kernel, *bias], kernel_shape=[w.kh, w.kw], strides=[w.sh, w.sw], pads=_pads(w))
        _activation(g, layer.activation, rank_out)
    elif kind == "Dense":
        bias = [g.constant("bias", weights["bias"])] if layer.use_bias else []
        g.add("Gemm", [g.constant("kernel", weights["kernel"]), *bias])
        _activation(g, layer.activation, rank_out)
    elif kind == "MaxPooling2D":
        w = layer.window
        if w.padded:  # -inf never wins a window (each holds a real cell); see the module's docstring for why a Pad
            top, left, bottom, right = _pads(w)
            g.add(
                "Pad",
                [
                    g.constant("pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)),
                    g.constant("minus_inf", np.array(-np.inf, np.float32)),
                ],
                mode="constant",
            )
        g.add("MaxPool", kernel_shape=[w.kh, w.kw], strides=[w.sh, w.sw])
    elif kind == "AveragePooling2D":
        w = layer.window
        g.add("AveragePool", kernel_shape=[w.kh, w.kw], strides=[w.sh, w.sw], pads=_pads(w), count_include_pad=0)
    elif kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        g.add(kind.replace("Pooling2D", "Pool"))
        if not layer.keepdims:
            g.add("Flatten", axis=1)
            g.layout = "nhwc"
    elif kind == "ZeroPadding2D":
        (top, bottom), (left, right) = layer.padding
        g.add("Pad", [g.constant("pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))], mode="constant")
    elif kind == "BatchNormalization":
        c = layer.input_shape[-1]
        inputs = [
            weights.get("gamma", np.ones(c, np.float32)),
            weights.get("beta", np.zeros(c, np.float32)),
            weights["moving_mean"],
            weights["moving_variance"],
        ]
        g.add(
            "BatchNormalization",
            [g.constant(n, v) for n, v in zip(("gamma", "beta", "mean", "var"), inputs)],
            epsilon=float(layer.epsilon),
        )
    elif kind == "Flatten":
        g.add("Flatten", axis=1)
    elif kind == "Reshape":
        g.add("Reshape", [g.constant("shape", np.array([-1, *layer.output_shape], np.int64))])
        g.layout = "nhwc"
    elif kind == "Activation":
        _activation(g, layer.activation, rank_in)
    elif kind != "Dropout":
        raise ValueError(f"layer {layer.name!r} ({kind}) has no ONNX export")


def to_onnx(model, opset: int | None = None):
    """The ``onnx.ModelProto`` of ``model`` (built), checked by ``onnx.checker``."""
    onnx = require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    if not model.built:
        raise ValueError("the model is not built: give the first layer an input_shape=(...) or call model.build()")
    opset = OPSET if opset is None else int(opset)
    if opset < OPSET:
        raise ValueError(f"opset {opset} is too old: the graph needs opset {OPSET} or later")
    g = _Graph(helper, numpy_helper)
    for layer in model.layers:
        weights = {k: model.backend.to_numpy(v).astype(np.float32) for k, v in layer.params.items()}
        _layer(g, layer, weights)
    g.to("nhwc", len(model.output_shape) + 1)
    g.nodes.append(helper.make_node("Identity", [g.tensor], ["output"], name="output"))
    graph = helper.make_graph(
        g.nodes,
        model.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *model.input_shape])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", *model.output_shape])],
        g.initializers,
    )
    proto = helper.make_model(graph, producer_name="minicnn", opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path, format: str = "onnx", opset: int | None = None) -> None:
    """Write ``model`` to ``path`` as an ONNX file (float32, opset 17 by default), atomically. ``format``: Keras's
    ``export`` argument; minicnn exports "onnx" only."""
    from .utils import atomic_write

    if format != "onnx":
        raise ValueError(
            f"export format {format!r} is not supported: minicnn exports format='onnx' (for Keras's "
            f"other formats, save a .keras file and export it with Keras)"
        )
    data = to_onnx(model, opset).SerializeToString()
    atomic_write(os.fspath(path), lambda fh: fh.write(data))
