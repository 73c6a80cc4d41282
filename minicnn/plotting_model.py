"""Pictures of what a model holds and computes: its first kernels, its feature maps for one image, and the
saliency of a class (re-exported by :mod:`minicnn.plotting`)."""

from __future__ import annotations

import math

import numpy as np

from .figures import colorbar, new_figure, save_figure

POOLING = ("MaxPooling2D", "AveragePooling2D")


def filters_figure(model, layer_name=None):
    """The kernels of the first Conv2D layer (or ``layer_name``), one small image per filter (first input channel),
    on one shared colour scale (blue negative, red positive, the colorbar gives the values). Returns the Figure."""
    conv = [
        layer
        for layer in model.layers
        if type(layer).__name__ == "Conv2D" and (layer_name is None or layer.name == layer_name)
    ]
    if not conv:
        named = "" if layer_name is None else f" named {layer_name!r}"
        raise ValueError(f"plot_filters: the model has no Conv2D layer{named}")
    kernel = model.backend.to_numpy(conv[0].params["kernel"])[:, :, 0, :]  # (kh, kw, filters)
    filters = kernel.shape[-1]
    cols = min(8, filters)
    rows = math.ceil(filters / cols)
    limit = float(np.abs(kernel).max()) or 1.0
    fig = new_figure(1.2 * cols + 0.8, 1.3 * rows + 0.5)
    axes = []
    for f in range(filters):
        ax = fig.add_subplot(rows, cols, f + 1)
        image = ax.imshow(kernel[:, :, f], cmap="bwr", vmin=-limit, vmax=limit)
        ax.set_title(str(f), fontsize=7)
        ax.axis("off")
        axes.append(ax)
    colorbar(fig, image, axes, "weight")
    fig.suptitle(f"{conv[0].name}: {filters} filters {kernel.shape[0]}x{kernel.shape[1]} (blue < 0 < red)")
    return fig


def plot_filters(model, path, layer_name=None):
    """:func:`filters_figure` written as a PNG at ``path``. Returns ``path``."""
    return save_figure(filters_figure(model, layer_name=layer_name), path)


def _maps_title(name, fmap, shown, shared):
    count = fmap.shape[-1]
    which = f"all {count} maps" if shown == count else f"first {shown} of {count} maps"
    return f"{name} {fmap.shape[0]}x{fmap.shape[1]}: {which}" + ("" if shared else " (each on its own scale)")


def feature_maps_figure(model, image, max_maps: int | None = 16, shared_scale: bool = True, pooling: bool = True):
    """The input image and the feature maps of every Conv2D layer (and, with ``pooling``, every pooling layer) for
    it, in inference mode. Each row says how many of the layer's maps it shows (``max_maps``; None: all).

    ``shared_scale`` (the default) draws all maps of a layer on one colour scale, from 0 to the layer's largest
    value, with a colorbar: a dead map (all zeros, marked "dead") and a saturated one then look different. With
    ``shared_scale=False`` each map is stretched to its own range (details show, magnitudes do not). Returns the Figure.
    """
    from .trace import feature_maps

    maps = feature_maps(model, image, types=("Conv2D",) + (POOLING if pooling else ()))
    if not maps:
        raise ValueError("plot_feature_maps: the model has no Conv2D layer")
    cols = max(fmap.shape[-1] for fmap in maps.values()) if max_maps is None else max_maps
    rows = len(maps) + 1
    fig = new_figure(0.75 * cols + 1.2, 1.3 * rows + 0.5)
    ax = fig.add_subplot(rows, cols, 1)
    ax.imshow(np.asarray(image).reshape(model.input_shape[0], model.input_shape[1]), cmap="gray_r")
    ax.set_title("input", fontsize=7)
    ax.axis("off")
    for row, (name, fmap) in enumerate(maps.items(), start=1):
        shown = min(cols, fmap.shape[-1])
        low, high = float(min(fmap.min(), 0)), float(fmap.max()) or 1.0
        axes = []
        for f in range(shown):
            ax = fig.add_subplot(rows, cols, row * cols + f + 1)
            dead = not np.any(fmap[:, :, f])
            scale = {"vmin": low, "vmax": high} if shared_scale else {}
            image_ = ax.imshow(fmap[:, :, f], cmap="viridis", **scale)
            ax.set_title("dead" if dead else str(f), fontsize=6, color="red" if dead else "black", pad=2)
            ax.axis("off")
            axes.append(ax)
        if shared_scale:
            colorbar(fig, image_, axes)
        axes[0].text(
            0,
            1.28,
            _maps_title(name, fmap, shown, shared_scale),
            transform=axes[0].transAxes,
            fontsize=8,
            fontweight="bold",
            va="bottom",
        )
    fig.suptitle("Feature maps of each convolution (after its activation) and pooling, for one image")
    return fig


def plot_feature_maps(model, image, path, max_maps: int | None = 16, shared_scale: bool = True, pooling: bool = True):
    """:func:`feature_maps_figure` written as a PNG at ``path``. Returns ``path``."""
    fig = feature_maps_figure(model, image, max_maps=max_maps, shared_scale=shared_scale, pooling=pooling)
    return save_figure(fig, path)


def saliency_figure(model, image, class_index, class_names=None):
    """The image, the gradient of class ``class_index``'s score with respect to each pixel, and its magnitude, with
    colorbars. The score is the class's logit (its value before the softmax) when the model ends in softmax. The
    title gives the model's prediction for the image and its probability. Returns the Figure."""
    from .trace import saliency

    grad = saliency(model, image, class_index)[:, :, 0]
    img = np.asarray(image).reshape(grad.shape)
    probabilities = model.predict(img.reshape((1,) + tuple(model.input_shape)))[0]
    predicted = int(np.argmax(probabilities))
    name = (lambda k: str(class_names[k])) if class_names is not None else str
    softmax = model.output_activation == "softmax"
    score = "logit (its score before the softmax)" if softmax else "output"
    limit = float(np.abs(grad).max()) or 1.0
    fig = new_figure(11, 3.8)
    panels = [
        (img, "input", "gray_r", None, "pixel"),
        (
            grad,
            f"d logit[{class_index}] / d pixel" if softmax else f"d output[{class_index}] / d pixel",
            "bwr",
            limit,
            "gradient",
        ),
        (np.abs(grad), "|gradient|", "hot", None, "|gradient|"),
    ]
    for k, (data, title, cmap, lim, label) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1)
        kwargs = {"vmin": -lim, "vmax": lim} if lim else {}
        shown = ax.imshow(data, cmap=cmap, **kwargs)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        colorbar(fig, shown, ax, label)
    verdict = "right" if predicted == int(class_index) else "wrong"
    fig.suptitle(
        f"Saliency of class {name(int(class_index))}: which pixels move its {score}\n"
        f"the model predicts {name(predicted)} with probability {probabilities[predicted]:.3f} ({verdict}); "
        f"class {name(int(class_index))} has {probabilities[int(class_index)]:.3f}",
        fontsize=10,
    )
    return fig


def plot_saliency(model, image, class_index, path, class_names=None):
    """:func:`saliency_figure` written as a PNG at ``path``. Returns ``path``."""
    return save_figure(saliency_figure(model, image, class_index, class_names=class_names), path)
