"""Pictures, drawn with matplotlib's object API on the Agg canvas (no screen needed, no pyplot state),
and written atomically."""

from __future__ import annotations

import io
import math

import numpy as np

from .utils import atomic_write


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    return path


def plot_history(history, path):
    """Two panels like R keras's ``plot(history)``: loss, then accuracy, per epoch, training and validation.

    ``history``: a :class:`~minicnn.training.History` or its ``.history`` dict. Returns ``path``.
    """
    hist = getattr(history, "history", history)
    if not hist.get("loss"):
        raise ValueError("plot_history: the history holds no epochs")
    epochs = np.arange(1, len(hist["loss"]) + 1)
    fig = _figure(7, 6)
    for row, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(2, 1, row + 1)
        for key, label, style in ((metric, "training", "o-"), (f"val_{metric}", "validation", "s--")):
            if hist.get(key):
                ax.plot(epochs, hist[key], style, label=label, markersize=4)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    ax.set_xlabel("epoch")
    fig.suptitle("Training history")
    return _save(fig, path)


def plot_misclassified(x, y_true, y_pred, path, max_images: int = 36, class_names=None):
    """A grid of the misclassified images (at most ``max_images``), each titled ``true -> predicted``.

    ``x``: images (N, H, W) or (N, H, W, 1); ``y_true``, ``y_pred``: class indices (N,). Returns ``path``.
    """
    x = np.asarray(x)
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if not len(x) == len(y_true) == len(y_pred):
        raise ValueError(f"x, y_true and y_pred must have the same length, got {len(x)}, {len(y_true)}, "
                         f"{len(y_pred)}")
    wrong = np.flatnonzero(y_true != y_pred)
    shown = wrong[:max_images]
    cols = max(1, min(6, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    fig = _figure(1.6 * cols, 1.8 * rows + 0.4)
    name = (lambda k: class_names[k]) if class_names is not None else str
    for k, i in enumerate(shown):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(x[i].reshape(x.shape[1], x.shape[2]), cmap="gray_r")
        ax.set_title(f"{name(int(y_true[i]))} -> {name(int(y_pred[i]))}", fontsize=9, color="darkred")
        ax.axis("off")
    fig.suptitle(f"Misclassified: {len(wrong)} of {len(x)} (true -> predicted)"
                 + (f", first {len(shown)} shown" if len(shown) < len(wrong) else ""))
    return _save(fig, path)


def plot_filters(model, path, layer_name=None):
    """The kernels of the first Conv2D layer (or ``layer_name``), one small image per filter (first input channel),
    on a shared colour scale (blue negative, red positive). Returns ``path``."""
    conv = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"
            and (layer_name is None or layer.name == layer_name)]
    if not conv:
        named = "" if layer_name is None else f" named {layer_name!r}"
        raise ValueError(f"plot_filters: the model has no Conv2D layer{named}")
    kernel = model.backend.to_numpy(conv[0].params["kernel"])[:, :, 0, :]   # (kh, kw, filters)
    filters = kernel.shape[-1]
    cols = min(8, filters)
    rows = math.ceil(filters / cols)
    limit = float(np.abs(kernel).max()) or 1.0
    fig = _figure(1.2 * cols, 1.3 * rows + 0.5)
    for f in range(filters):
        ax = fig.add_subplot(rows, cols, f + 1)
        ax.imshow(kernel[:, :, f], cmap="bwr", vmin=-limit, vmax=limit)
        ax.set_title(str(f), fontsize=7)
        ax.axis("off")
    fig.suptitle(f"{conv[0].name}: {filters} filters {kernel.shape[0]}x{kernel.shape[1]} (blue < 0 < red)")
    return _save(fig, path)


def plot_feature_maps(model, image, path, max_maps: int = 16):
    """The input digit and the first ``max_maps`` feature maps of every Conv2D layer for it. Returns ``path``."""
    from .trace import feature_maps

    maps = feature_maps(model, image)
    if not maps:
        raise ValueError("plot_feature_maps: the model has no Conv2D layer")
    cols = max_maps
    fig = _figure(0.9 * cols, 1.1 * (len(maps) + 1) + 0.4)
    ax = fig.add_subplot(len(maps) + 1, cols, 1)
    ax.imshow(np.asarray(image).reshape(model.input_shape[0], model.input_shape[1]), cmap="gray_r")
    ax.set_title("input", fontsize=7)
    ax.axis("off")
    for row, (name, fmap) in enumerate(maps.items(), start=1):
        for f in range(min(max_maps, fmap.shape[-1])):
            ax = fig.add_subplot(len(maps) + 1, cols, row * cols + f + 1)
            ax.imshow(fmap[:, :, f], cmap="viridis")
            ax.axis("off")
            if f == 0:
                ax.set_title(f"{name} {fmap.shape[0]}x{fmap.shape[1]}", fontsize=7, loc="left")
    fig.suptitle("Feature maps (after ReLU) of each convolution for one digit")
    return _save(fig, path)


def plot_saliency(model, image, class_index, path):
    """The digit, the gradient of its class score w.r.t. each pixel, and its magnitude. Returns ``path``."""
    from .trace import saliency

    grad = saliency(model, image, class_index)[:, :, 0]
    img = np.asarray(image).reshape(grad.shape)
    limit = float(np.abs(grad).max()) or 1.0
    fig = _figure(9, 3.4)
    for k, (data, title, cmap, lim) in enumerate([(img, "input", "gray_r", None),
                                                   (grad, f"d score[{class_index}] / d pixel", "bwr", limit),
                                                   (np.abs(grad), "|gradient|", "hot", None)]):
        ax = fig.add_subplot(1, 3, k + 1)
        kwargs = {"vmin": -lim, "vmax": lim} if lim else {}
        ax.imshow(data, cmap=cmap, **kwargs)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"Saliency of class {class_index}: which pixels move its score")
    return _save(fig, path)


def plot_gradient_norms(recorder, path):
    """Per-parameter gradient norms over training, from a :class:`~minicnn.training.GradientNormRecorder`
    (log scale). Returns ``path``."""
    if not recorder.steps:
        raise ValueError("plot_gradient_norms: the recorder holds no steps (did training run with it?)")
    fig = _figure(8, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for name, values in recorder.norms.items():
        ax.plot(recorder.steps, values, label=name, linestyle="-" if name.endswith("kernel") else ":")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("gradient L2 norm")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Gradient norms per parameter during training")
    return _save(fig, path)
