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
