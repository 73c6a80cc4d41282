"""An interactive page of one training step: ``python -m minicnn.explain --html`` writes ``index.html``, one
self-contained file (inline CSS and JavaScript, pictures as base64 PNG data URIs, nothing fetched) that steps through
the step layer by layer: forward, the loss, backward, then the weights' gradients and updates. Each slide shows the
layer's formula, shapes and statistics and its activations or gradients as pictures; arrow keys or buttons step.

    >>> from minicnn.page import write_page
    >>> write_page(model, x, y, "explain/index.html")      # doctest: +SKIP

What it draws comes from :meth:`Sequential.trace` plus hooks that keep the first image's activations and
gradients (and the batch's, for flat layers).
"""

from __future__ import annotations

import base64
import html

import numpy as np

from .figures import colorbar, new_figure, png_bytes
from .page_template import render_page
from .utils import atomic_write

SHOWN_MAPS = 16


def capture_step(model, x, y):
    """Trace one step of ``model`` on ``(x, y)`` and keep, per layer, its output and its input gradient for the
    first sample (all rows for flat layers), and its weight gradients. Returns ``(trace, arrays)``."""
    be = model.backend
    arrays = {"forward": {}, "backward": {}, "weights": {}}

    def first(a):  # one image of an image batch; the whole (small) matrix of a flat layer
        return be.to_numpy(a[:1] if a.ndim > 2 else a)

    def on_forward(layer, x_in, y_out):
        arrays["forward"][layer.name] = first(y_out)

    def on_backward(layer, grad_in, grad_out):
        arrays["backward"][layer.name] = None if grad_in is None else first(grad_in)
        if layer is model.layers[-1]:
            arrays["loss_gradient"] = be.to_numpy(grad_out)  # what the loss handed to the last layer

    handles = [
        h
        for layer in model.layers
        for h in (layer.register_forward_hook(on_forward), layer.register_backward_hook(on_backward))
    ]
    try:
        trace = model.trace(x, y)
    finally:
        for handle in handles:
            handle.remove()
    for layer in model.layers:
        arrays["weights"][layer.name] = {k: be.to_numpy(g) for k, g in layer.grads.items()}
    arrays["input"] = np.asarray(x[:1])
    return trace, arrays


def _data_uri(fig) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig)).decode("ascii")


def picture(array, title: str, diverging: bool = False, axes=("row (sample)", "column (feature)")) -> str:
    """A data URI of ``array`` drawn as an image grid: (1, H, W, C) -> the first 16 channel maps on one colour scale;
    2-D (rows, units) -> a heat map; (kh, kw, in, out) kernels -> the first input channel of the first 16 filters.
    ``diverging``: a symmetric blue-white-red scale (gradients), else viridis from the smallest value; ``axes``: the
    labels of a heat map's rows and columns."""
    a = np.asarray(array, np.float64)
    kind = "maps"
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 4:  # a conv kernel (kh, kw, in, out): its first input channel
        a, kind = a[:, :, 0, :], "filters (input channel 0)"
    if a.ndim == 1:  # a bias or its gradient: one bar per unit
        return _data_uri(_bars(a, title))
    limit = float(np.abs(a).max()) or 1.0
    scale = (
        {"cmap": "bwr", "vmin": -limit, "vmax": limit}
        if diverging
        else {"cmap": "viridis", "vmin": float(min(a.min(), 0)), "vmax": float(a.max()) or 1.0}
    )
    tiled = a.ndim == 3
    if tiled:
        count = a.shape[-1]
        shown = min(SHOWN_MAPS, count)
        a = mosaic(a[:, :, :shown], cols=min(8, shown))
        title = f"{title}: {'all' if shown == count else f'first {shown} of'} {count} {kind} (row by row, from 0)"
        width = min(9.0, 0.06 * a.shape[1] + 1.5)
        fig = new_figure(width, (width - 1.2) * a.shape[0] / a.shape[1] + 0.7)  # the mosaic's aspect, no margins
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(a, interpolation="nearest", **scale)
        ax.axis("off")
        colorbar(fig, im, ax)
        fig.suptitle(title, fontsize=10)
    else:
        a = a.reshape(1, -1) if a.ndim == 1 else a.reshape(a.shape[0], -1)
        fig = new_figure(8, 2.4 if a.shape[0] < 40 else 4)
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(a, aspect="auto", interpolation="nearest", **scale)
        ax.set_ylabel(axes[0], fontsize=8)
        ax.set_xlabel(axes[1], fontsize=8)
        ax.tick_params(labelsize=7)
        colorbar(fig, im, ax)
        fig.suptitle(f"{title}: a {a.shape[0]} x {a.shape[1]} matrix", fontsize=10)
    return _data_uri(fig)


def _bars(values, title):
    fig = new_figure(8, 2.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(np.arange(len(values)), values, color=np.where(values >= 0, "#c0392b", "#1f5fbf"), width=0.8)
    ax.axhline(0, color="#444444", lw=0.6)
    ax.set_xlabel("unit", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.suptitle(f"{title}: {len(values)} values (red > 0 > blue)", fontsize=10)
    return fig


def mosaic(maps, cols: int) -> np.ndarray:
    """(H, W, F) maps tiled into one 2-D array, ``cols`` maps a row, separated by one blank (NaN) pixel."""
    h, w, f = maps.shape
    rows = -(-f // cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for k in range(f):
        r, c = divmod(k, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = maps[:, :, k]
    return out


def _stats(s: dict) -> str:
    if not s:
        return "not computed (nothing needs the gradient of the input images)"
    return (
        f"mean {s['mean']:+.3e} &middot; std {s['std']:.3e} &middot; zeros {100 * s['zeros']:.1f}% &middot; "
        f"L2 norm {s['norm']:.3e}"
    )


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in pairs if v not in (None, ""))


def _slide(stage, title, rows, images=()) -> dict:
    return {"stage": stage, "title": title, "table": _rows(rows), "images": list(images)}


def build_slides(trace, arrays) -> list:
    """The page's slides as dicts: stage ("overview", "forward", "loss", "backward", "update"), title, an HTML
    table of formula, shapes and statistics, and pictures as ``(caption, data URI)``."""
    from .graph import graph_figure

    e = html.escape
    slides = [
        _slide(
            "overview",
            f"One training step on a batch of {trace.batch_size}",
            [
                ("loss", f"{trace.loss:.4f}"),
                ("layers", str(len(trace.forward))),
                ("order", "forward (first layer to last), the loss, backward (last layer to first), the update"),
                ("keys", "&larr; / &rarr; step, Home / End jump; or the buttons"),
            ],
            [
                ("the step as a graph", _data_uri(graph_figure(trace))),
                ("the first input image", picture(arrays["input"], "input image")),
            ],
        )
    ]
    for r in trace.forward:
        out = arrays["forward"].get(r["layer"])
        bn = r.get("batch_statistics")
        slides.append(
            _slide(
                "forward",
                f"forward: {r['layer']} ({r['type']})",
                [
                    ("formula", f"<code>{e(r['formula'])}</code>"),
                    ("products", e(r["products"].replace("N", str(trace.batch_size))) if r["products"] else ""),
                    ("shapes", f"X {r['input_shape']} &rarr; Y {r['output_shape']}"),
                    ("multiply-adds", f"{r['multiply_adds_per_image']:,} per image"),
                    ("time", f"{r['ms']:.2f} ms (median)"),
                    ("output Y", _stats(r["output_stats"])),
                    (
                        "batch statistics",
                        f"{bn['channels']} channels, means {bn['mean_min']:+.3f} .. {bn['mean_max']:+.3f}, "
                        f"variances {bn['var_min']:.3f} .. {bn['var_max']:.3f}"
                        if bn
                        else "",
                    ),
                ],
                [] if out is None else [(f"Y of {r['layer']}", picture(out, f"{r['layer']} output Y"))],
            )
        )
    info = trace.loss_info
    if info:
        slides.append(
            _slide(
                "loss",
                f"loss: {info['name']}",
                [
                    ("value", f"{trace.loss:.4f}"),
                    ("formula", f"<code>{e(info['formula'])}</code>"),
                    ("gradient", f"<code>{e(info['gradient_formula'])}</code>"),
                    ("gradient shape", str(info["gradient_shape"])),
                    ("gradient statistics", _stats(info["gradient_stats"])),
                ],
                [
                    (
                        "the outputs P",
                        picture(arrays["forward"][trace.forward[-1]["layer"]], "P", axes=("row (sample)", "class")),
                    ),
                    (
                        "the gradient the loss hands back",
                        picture(
                            arrays["loss_gradient"], "dL/d(last layer)", diverging=True, axes=("row (sample)", "class")
                        ),
                    ),
                ],
            )
        )
    for r in trace.backward:
        grad = arrays["backward"].get(r["layer"])
        pics = [] if grad is None else [(f"dX of {r['layer']}", picture(grad, f"{r['layer']} dX", diverging=True))]
        for key, g in arrays["weights"].get(r["layer"], {}).items():
            name = {"kernel": "dW", "bias": "db"}.get(key, f"d{key}") + f" ({key})"
            pics.append(
                (
                    f"{name} of {r['layer']}",
                    picture(g, f"{r['layer']} {name}", diverging=True, axes=("input (row of W)", "unit (column of W)")),
                )
            )
        slides.append(
            _slide(
                "backward",
                f"backward: {r['layer']} ({r['type']})",
                [
                    ("formula", f"<code>{e(r['formula'])}</code>"),
                    ("shapes", f"dY {r['grad_output_shape']} &rarr; dX {r['grad_input_shape']}"),
                    ("multiply-adds", f"{r['multiply_adds_per_image']:,} per image"),
                    ("time", f"{r['ms']:.2f} ms (median)"),
                    ("dX", _stats(r["grad_input_stats"])),
                ],
                pics,
            )
        )
    update = [
        (
            p["name"],
            f"shape {tuple(p['shape'])} &middot; |grad| {p['grad_norm']:.3e} &middot; "
            + (
                f"|update| / |weight| {p['update_ratio']:.2e}"
                if p["update_ratio"] is not None
                else f"|update| {p['update_norm']:.2e}"
            ),
        )
        for p in trace.params
    ]
    slides.append(_slide("update", f"update: {trace.optimizer.get('name', 'optimizer')}", update))
    return slides


def write_trace_page(trace, arrays, path, title: str = "minicnn: one training step") -> str:
    """Write the page of a step :func:`capture_step` recorded to ``path`` (atomically). Returns ``path``."""
    text = render_page(build_slides(trace, arrays), title=title)
    atomic_write(path, lambda fh: fh.write(text), mode="w")
    return path


def write_page(model, x, y, path) -> str:
    """Trace one step of ``model`` on ``(x, y)`` (the weights are updated, as by any training step) and write the
    interactive page to ``path``. Returns ``path``."""
    trace, arrays = capture_step(model, x, y)
    return write_trace_page(trace, arrays, path, title=f"minicnn: one training step of {model.name}")
