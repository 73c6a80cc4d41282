"""A trace of one training step, layer by layer: what each layer computed, in which shapes, at what cost, and
what the numbers looked like on the way forward and back.

    >>> trace = model.trace(x, y)          # one step: forward, loss, backward, optimizer update   # doctest: +SKIP
    >>> print(trace)                       # the table                                           # doctest: +SKIP
    >>> trace.to_dict()["forward"][0]["multiply_adds_per_image"]                                 # doctest: +SKIP
    460800
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np


def array_stats(backend, a) -> dict:
    """mean, std, fraction of exact zeros and L2 norm of an array (None -> empty)."""
    if a is None:
        return {}
    h = backend.to_numpy(a).astype(np.float64)
    return {
        "mean": float(h.mean()),
        "std": float(h.std()),
        "zeros": float(np.mean(h == 0)),
        "norm": float(np.sqrt(np.sum(h * h))),
    }


@dataclass
class Trace:
    """The record of one traced step. ``forward`` and ``backward`` hold one dict per layer (in the order the
    layers ran); ``params`` one dict per parameter; ``loss`` the step's loss."""

    batch_size: int
    loss: float
    forward: list = field(default_factory=list)
    backward: list = field(default_factory=list)
    params: list = field(default_factory=list)
    optimizer: dict = field(default_factory=dict)
    loss_info: dict = field(default_factory=dict)
    timing_runs: int = 1

    def loss_lines(self) -> list:
        """The loss section of the text: its value, formula, and the gradient it starts the backward pass with."""
        info = self.loss_info
        if not info:
            return []
        s = info["gradient_stats"]
        return [
            "",
            "LOSS (between the passes)",
            f"  {info['name']:<17} value {self.loss:.4f}   {info['ms']:7.2f} ms",
            f"      {info['formula']}",
            f"      gradient {str(info['gradient_shape'])}: {info['gradient_formula']}",
            f"      gradient: mean {s['mean']:+.2e}  std {s['std']:.2e}  norm {s['norm']:.3e}",
        ]

    def plot_graph(self, path):
        """Draw this step as a graph (layers as boxes, forward edges with activation shapes, backward edges with
        dX shapes, each weight's dW) into the PNG ``path``; see :mod:`minicnn.graph`. Returns ``path``."""
        from .graph import plot_graph

        return plot_graph(self, path)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        n = self.batch_size
        out = [
            f"One training step on a batch of {n}; loss {self.loss:.4f}",
            f"(times: the median of {self.timing_runs} runs of the step after one warm-up run)",
            "",
            "FORWARD (first layer to last)",
        ]
        for r in self.forward:
            out.append(
                f"  {r['layer']:<17} {str(r['input_shape']):>17} -> {str(r['output_shape']):<17} "
                f"{r['ms']:7.2f} ms  {r['multiply_adds_per_image']:>10,} MAC/image"
            )
            out.append(f"      {r['formula']}")
            if r["products"]:
                out.append(f"      products: {r['products'].replace('N', str(n))}")
            s = r["output_stats"]
            out.append(
                f"      output: mean {s['mean']:+.4f}  std {s['std']:.4f}  zeros {100 * s['zeros']:.1f}%  "
                f"norm {s['norm']:.3f}"
            )
            b = r.get("batch_statistics")
            if b:
                out.append(
                    f"      batch statistics of its {b['channels']} channels: means {b['mean_min']:+.3f} .. "
                    f"{b['mean_max']:+.3f}, variances {b['var_min']:.3f} .. {b['var_max']:.3f}"
                )
        out += self.loss_lines()
        out += ["", "BACKWARD (last layer to first)"]
        for r in self.backward:
            shapes = f"dY {str(r['grad_output_shape']):>17} -> dX {str(r['grad_input_shape']):<17}"
            out.append(f"  {r['layer']:<17} {shapes} {r['ms']:7.2f} ms  {r['multiply_adds_per_image']:>10,} MAC/image")
            out.append(f"      {r['formula']}")
            s = r["grad_input_stats"]
            if s:
                out.append(
                    f"      dX: mean {s['mean']:+.2e}  std {s['std']:.2e}  zeros {100 * s['zeros']:.1f}%  "
                    f"norm {s['norm']:.3e}"
                )
            else:
                out.append("      dX: not computed (nothing needs the gradient of the input images)")
        out += ["", f"PARAMETERS ({self.optimizer.get('name', '')} update)"]
        for r in self.params:
            ratio = (
                f"|update| / |weight| {r['update_ratio']:.2e}"
                if r["update_ratio"] is not None
                else f"|update| {r['update_norm']:.2e} (the weight was all zeros)"
            )
            out.append(f"  {r['name']:<22} {str(r['shape']):<17} |grad| {r['grad_norm']:.3e}   {ratio}")
        return "\n".join(out)


LOSS_FORMULAS = {  # loss name -> (L, its gradient where the backward pass starts)
    "categorical_crossentropy": (
        "L = -(1/N) sum_n sum_k Y[n,k] log P[n,k]   (P clipped to [1e-7, 1 - 1e-7])",
        "dL/dP = -Y / (N P), through the clip and the normalisation of P",
    ),
    "sparse_categorical_crossentropy": (
        "L = -(1/N) sum_n log P[n, y_n]   (y_n: the class index of sample n)",
        "dL/dP = -onehot(y) / (N P), through the clip and the normalisation",
    ),
}
FUSED_GRADIENT = "dL/dZ = (P - Y) / N   (softmax + cross-entropy fused: the backward pass starts below the softmax)"


def loss_record(model, fused: bool, grad, backend, ms: float) -> dict:
    """What the loss computed and the gradient it hands to the last layer (its formula, shape and statistics)."""
    name = getattr(model.loss, "name", type(model.loss).__name__)
    formula, gradient = LOSS_FORMULAS.get(name, (name, "dL/dP from the loss's backward"))
    if getattr(model.loss, "from_logits", False):
        formula = formula.replace("P[", "softmax(Z)[").split("   (P clipped")[0] + "   (from logits: no clip)"
        gradient = "dL/dZ = (softmax(Z) - Y) / N"
    return {
        "name": name,
        "formula": formula,
        "gradient_formula": FUSED_GRADIENT if fused else gradient,
        "gradient_shape": tuple(grad.shape),
        "gradient_stats": array_stats(backend, grad),
        "ms": ms,
    }


def _snapshot(model) -> tuple:
    """The state one step changes besides the weights the update moves: the dropout streams and the
    non-trainable weights (BatchNormalization's moving statistics), so that a timed step can be run again as it was."""
    import copy

    streams = {}
    for layer in model.layers:
        if hasattr(layer, "rng"):
            try:
                streams[layer] = copy.deepcopy(layer.rng)
            except Exception:  # a generator that cannot be copied (some device ones): its masks then differ per run
                pass
    return streams, [w.copy() for w in model.non_trainable_weights]


def _restore(model, state) -> None:
    import copy

    streams, fixed = state
    for layer, rng in streams.items():
        layer.rng = copy.deepcopy(rng)
    for w, saved in zip(model.non_trainable_weights, fixed):
        w[...] = saved


def _median_ms(runs: list, key: str) -> list:
    """Per layer, the median time over the runs after the first (the warm-up: caches, buffers, compiled kernels)."""
    timed = runs[1:] or runs
    return [float(np.median([run[key][i]["ms"] for run in timed])) for i in range(len(runs[0][key]))]


def trace_step(model, x, y, update: bool = True, repeats: int = 5) -> Trace:
    """Run one training step of ``model`` on ``(x, y)`` (dropout on), recording every layer through its forward and
    backward hooks; see :class:`Trace`. With ``update=False`` the optimizer is not applied and the update ratios
    are 0.

    Timing: the step runs ``1 + repeats`` times from the same state (same dropout masks, same moving statistics);
    each layer's ``ms`` is the median of the last ``repeats`` runs (the first is a warm-up). The records are those of
    the last run, and the optimizer updates the weights once."""
    model.require_compiled("trace")
    be = model.backend
    xb = model.prepare_inputs(x)
    yb = model.prepare_targets(y, xb.shape[0])
    fused = model.through_softmax()
    state = _snapshot(model)
    runs = []
    for _ in range(1 + max(0, int(repeats))):
        _restore(model, state)
        runs.append(_record_step(model, xb, yb, fused))
    trace = Trace(
        batch_size=int(xb.shape[0]),
        loss=runs[-1]["loss"],
        optimizer=model.optimizer.get_config(),
        forward=runs[-1]["forward"],
        backward=runs[-1]["backward"],
        loss_info=runs[-1]["loss_info"],
        timing_runs=len(runs[1:] or runs),
    )
    for key in ("forward", "backward"):
        for record, ms in zip(trace.__dict__[key], _median_ms(runs, key)):
            record["ms"] = ms
    trace.loss_info["ms"] = float(np.median([run["loss_info"]["ms"] for run in runs[1:] or runs]))
    names = [f"{layer.name}/{key}" for layer in model.layers for key in layer.weight_names(trainable=True)]
    before = [be.to_numpy(w) for w in model.trainable_weights]
    if update:
        model.optimizer.apply(model.trainable_weights, model.gradients, backend=be)
    for name, old, w, g in zip(names, before, model.trainable_weights, model.gradients):
        w_norm = float(np.linalg.norm(old))
        step = float(np.linalg.norm(be.to_numpy(w) - old))
        grad_norm = float(np.linalg.norm(be.to_numpy(g)))
        trace.params.append(
            {
                "name": name,
                "shape": tuple(old.shape),
                "grad_norm": grad_norm,
                "weight_norm": w_norm,
                "update_norm": step,
                "update_ratio": step / w_norm if w_norm else None,
            }
        )
    return trace


def _record_step(model, xb, yb, fused) -> dict:
    """One forward, loss and backward pass with every layer's hooks recording: {"loss", "forward", "backward",
    "loss_info"}."""
    be = model.backend
    record = {"forward": [], "backward": []}
    clock = [0.0]  # when the layer now running started (each hook restarts it after its own bookkeeping)

    def elapsed_ms():
        be.synchronize()
        return 1e3 * (time.perf_counter() - clock[0])

    def restart():
        be.synchronize()
        clock[0] = time.perf_counter()

    def on_forward(layer, x_in, y_out):
        ms, d = elapsed_ms(), layer.describe()
        record["forward"].append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "input_shape": tuple(x_in.shape),
                "output_shape": tuple(y_out.shape),
                "formula": d["forward"],
                "products": d["products"],
                "multiply_adds_per_image": int(layer.multiply_adds()),
                "ms": ms,
                "output_stats": array_stats(be, y_out),
                "batch_statistics": getattr(layer, "batch_statistics_summary", lambda: None)(),
            }
        )
        restart()

    def on_backward(layer, grad_in, grad_out):
        ms, formula = elapsed_ms(), layer.describe()["backward"]
        if fused and layer is model.layers[-1]:
            formula = "dZ = (P - Y) / N (softmax + cross-entropy, fused); " + formula.split("; ", 1)[-1]
        # the backward products: dW always, dX unless this layer skipped it (each as many multiply-adds as forward)
        macs = layer.multiply_adds() * (1 if grad_in is None else 2)
        record["backward"].append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "grad_output_shape": tuple(grad_out.shape),
                "multiply_adds_per_image": int(macs),
                "grad_input_shape": None if grad_in is None else tuple(grad_in.shape),
                "formula": formula,
                "ms": ms,
                "grad_input_stats": array_stats(be, grad_in),
            }
        )
        restart()

    handles = [
        h
        for layer in model.layers
        for h in (layer.register_forward_hook(on_forward), layer.register_backward_hook(on_backward))
    ]
    try:
        restart()
        p = model.forward(xb, training=True)
        restart()
        xp = be.xp
        record["loss"] = float(model.loss.forward(xp, p, yb))
        grad = model.loss.backward_from_softmax(p, yb) if fused else model.loss.backward(xp, p, yb)
        record["loss_info"] = loss_record(model, fused, grad, be, elapsed_ms())
        restart()
        model.backward(grad, from_logits=fused, input_gradient=False)
    finally:
        for handle in handles:
            handle.remove()
    return record


def feature_maps(model, image, types=("Conv2D",)) -> dict:
    """The output of every layer whose type is in ``types`` (Conv2D by default; add "MaxPooling2D" for the pooled
    maps) for one image ``(H, W, C)`` or ``(1, H, W, C)``: {layer name: (OH, OW, F)} host arrays (inference mode)."""
    x = model.prepare_inputs(np.asarray(image).reshape((1,) + tuple(model.input_shape)))
    maps = {}
    for layer in model.layers:
        x = layer.run_forward(x, training=False)
        if type(layer).__name__ in types:
            maps[layer.name] = model.backend.to_numpy(x)[0]
    return maps


def saliency(model, image, class_index: int) -> np.ndarray:
    """d(score of ``class_index``)/d(image): how much each input pixel moves that class's score, shape of the image.

    The score is the class's logit (the last layer's input to softmax) when the model ends in softmax, else the
    class's output. Computed by backpropagation with dL/dz = one-hot(class) at the top, dropout off."""
    x = model.prepare_inputs(np.asarray(image).reshape((1,) + tuple(model.input_shape)))
    out = model.forward(x, training=False)
    k = out.shape[-1]
    if not 0 <= int(class_index) < k:
        raise ValueError(f"class_index must be in [0, {k}), got {class_index}")
    onehot = model.backend.xp.zeros_like(out)
    onehot[0, int(class_index)] = 1
    fused = model.output_activation == "softmax"
    dx = model.backward(onehot, from_logits=fused, input_gradient=True)
    return model.backend.to_numpy(dx)[0]
