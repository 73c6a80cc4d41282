"""Pictures, drawn with matplotlib's object API on the Agg canvas (no screen needed, no pyplot state),
and written atomically."""

from __future__ import annotations

import math

import numpy as np

from .figures import new_figure as _figure
from .figures import save_figure as _save
from .plotting_model import (
    feature_maps_figure,
    filters_figure,
    plot_feature_maps,
    plot_filters,
    plot_saliency,
    saliency_figure,
)

__all__ = [
    "feature_maps_figure",
    "filters_figure",
    "gradient_norms_figure",
    "history_figure",
    "plot_feature_maps",
    "plot_filters",
    "plot_gradient_norms",
    "plot_history",
    "plot_misclassified",
    "plot_saliency",
    "saliency_figure",
]


def history_figure(history):
    """Two panels like R keras's ``plot(history)``: loss, then accuracy, per epoch, training and validation.

    ``history``: a :class:`~minicnn.training.History` or its ``.history`` dict. Returns the Figure.
    """
    from matplotlib.ticker import MaxNLocator

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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.5 on a short run
        ax.grid(alpha=0.3)
        ax.legend()
    ax.set_xlabel("epoch")
    fig.suptitle("Training history")
    return fig


def plot_history(history, path):
    """:func:`history_figure` written as a PNG at ``path``. Returns ``path``."""
    return _save(history_figure(history), path)


def plot_misclassified(x, y_true, y_pred, path, max_images: int = 36, class_names=None):
    """A grid of the misclassified images (at most ``max_images``), each titled ``true -> predicted``.

    ``x``: images (N, H, W) or (N, H, W, 1); ``y_true``, ``y_pred``: class indices (N,). Returns ``path``.
    """
    x = np.asarray(x)
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if not len(x) == len(y_true) == len(y_pred):
        raise ValueError(f"x, y_true and y_pred must have the same length, got {len(x)}, {len(y_true)}, {len(y_pred)}")
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
    fig.suptitle(
        f"Misclassified: {len(wrong)} of {len(x)} (true -> predicted)"
        + (f", first {len(shown)} shown" if len(shown) < len(wrong) else "")
    )
    return _save(fig, path)


def gradient_norms_figure(recorder):
    """Per-parameter gradient norms over training, from a :class:`~minicnn.training.GradientNormRecorder`
    (log scale). Returns the Figure."""
    if not recorder.steps:
        raise ValueError("plot_gradient_norms: the recorder holds no steps (did training run with it?)")
    fig = _figure(10, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    layers = list(dict.fromkeys(name.split("/")[0] for name in recorder.norms))
    kinds = list(dict.fromkeys(name.split("/")[-1] for name in recorder.norms))
    palette = "tab10" if len(layers) <= 10 else "tab20"
    colours = _colormap(palette)
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
    for name, values in recorder.norms.items():
        layer, kind = name.split("/")[0], name.split("/")[-1]
        i = layers.index(layer)
        ax.plot(
            recorder.steps,
            values,
            label=name,
            color=colours(i % colours.N),
            linewidth=1.4,
            linestyle=styles[kinds.index(kind) % len(styles)],
            marker=markers[i % len(markers)],
            markersize=3.5,
            markevery=max(1, len(recorder.steps) // 8),
        )
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("gradient L2 norm")
    ax.grid(alpha=0.3)
    # beside the axes, not over the curves; one colour and marker per layer, one line style per weight kind
    ax.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        title="layer/weight",
        title_fontsize=8,
    )
    fig.suptitle("Gradient norms per parameter during training (colour: layer; line: kernel solid, bias dashed)")
    return fig


def plot_gradient_norms(recorder, path):
    """:func:`gradient_norms_figure` written as a PNG at ``path``. Returns ``path``."""
    return _save(gradient_norms_figure(recorder), path)


def _colormap(name):
    from matplotlib import colormaps

    return colormaps[name]
