"""Each layer's forward and backward, and each kernel, on the tutorial's shapes at batch 128, per backend.

    python -m benchmarks.kernels [--backends numpy,numba,cupy] [--repeats 10] [--batch 128] [--out DIR]

Median of ``--repeats`` runs after two warm-up runs. Layers are timed as they run inside a model (reused
buffers). GFLOP/s counts the multiply-adds of the matrix products (2 flops each): forward ``2*M*P*F`` for a
convolution (M = N*OH*OW rows, P = KH*KW*C, F filters), backward twice that (dW and dX; once for the first
convolution as a model trains it, which needs no dX). "matrix products alone" times a convolution's three products
on whole-batch matrices, to set against the layer's time; "fused convolution kernels" (backends that fuse it) times
the backend's one-call convolution without the layer. The machine's float32 matrix-multiply ceiling (a 2048^3
product through NumPy's BLAS, all threads) is measured in the same run, for scale.
Prints a markdown table, writes ``kernels.json`` and ``kernels.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from benchmarks.common import machine_info, markdown_table, time_call, write_json
from minicnn.cli import plain_text


def tutorial_layer_specs(batch):
    from minicnn import layers

    return [
        ("conv2d", lambda: layers.Conv2D(32, (5, 5), activation="relu"), (batch, 28, 28, 1), 2 * 24 * 24 * 25 * 32),
        ("max_pooling2d", lambda: layers.MaxPooling2D((2, 2)), (batch, 24, 24, 32), 0),
        ("conv2d_1", lambda: layers.Conv2D(64, (5, 5), activation="relu"), (batch, 12, 12, 32), 2 * 8 * 8 * 800 * 64),
        ("max_pooling2d_1", lambda: layers.MaxPooling2D((2, 2)), (batch, 8, 8, 64), 0),
        ("dropout", lambda: __import__("minicnn").layers.Dropout(0.2), (batch, 4, 4, 64), 0),
        ("dense", lambda: layers.Dense(120, activation="relu"), (batch, 1024), 2 * 1024 * 120),
        ("dense_1", lambda: layers.Dense(84, activation="relu"), (batch, 120), 2 * 120 * 84),
        ("dense_2", lambda: layers.Dense(10, activation="softmax"), (batch, 84), 2 * 84 * 10),
    ]


def bench_backend(name, batch, repeats):
    from minicnn.backend import get_backend, make_window

    be = get_backend(name)
    sync = be.synchronize
    rng = np.random.default_rng(0)
    rows = []
    specs = tutorial_layer_specs(batch)
    # the first convolution as a model trains it: nobody reads dL/dx of the input images, so no dX (and no col2im)
    specs.insert(1, ("conv2d, as trained (no dX)", specs[0][1], specs[0][2], specs[0][3]))
    for layer_name, make, shape, flops_per_image in specs:
        layer = make()
        layer.build(shape[1:], be, np.float32, rng)
        layer.reuse_buffers = True
        layer.compute_input_gradient = "no dX" not in layer_name
        x = be.asarray(rng.standard_normal(shape).astype(np.float32))
        y = layer.forward(x, training=True)
        g = be.asarray(rng.standard_normal(y.shape).astype(np.float32))
        fwd = time_call(lambda layer=layer, x=x: layer.forward(x, training=True), sync, repeats)
        bwd = time_call(lambda layer=layer, g=g: layer.backward(g), sync, repeats)
        flops = flops_per_image * batch
        backward_products = 2 if layer.compute_input_gradient else 1  # dW and dX, or dW alone
        rows.append(
            {
                "backend": name,
                "what": f"layer {layer_name}",
                "forward_ms": 1e3 * fwd,
                "backward_ms": 1e3 * bwd,
                "forward_gflops": flops / fwd / 1e9 if flops else None,
                "backward_gflops": backward_products * flops / bwd / 1e9 if flops else None,
            }
        )
    for label, shape, k, s, filters in (
        ("conv2d", (batch, 28, 28, 1), (5, 5), (1, 1), 32),
        ("conv2d_1", (batch, 12, 12, 32), (5, 5), (1, 1), 64),
    ):
        win = make_window(shape[1], shape[2], k, s, "valid")
        x = be.asarray(rng.standard_normal(shape).astype(np.float32))
        cols = be.im2col(x, win)
        rows.append(_products_row(be, label, cols, filters, rng, repeats))
        if be.fuses_conv2d:
            rows.append(_fused_conv_row(be, label, x, cols.shape[1], filters, win, rng, repeats))
        rows.append(
            {
                "backend": name,
                "what": f"im2col / col2im ({label})",
                "forward_ms": 1e3
                * time_call(lambda x=x, win=win, cols=cols: be.im2col(x, win, out=cols), sync, repeats),
                "backward_ms": 1e3
                * time_call(lambda cols=cols, shape=shape, win=win: be.col2im(cols, shape, win), sync, repeats),
            }
        )
    for label, shape in (("max_pooling2d", (batch, 24, 24, 32)), ("max_pooling2d_1", (batch, 8, 8, 64))):
        win = make_window(shape[1], shape[2], (2, 2), (2, 2), "valid")
        x = be.asarray(rng.standard_normal(shape).astype(np.float32))
        y, arg = be.maxpool_forward(x, win)
        rows.append(
            {
                "backend": name,
                "what": f"maxpool kernels ({label})",
                "forward_ms": 1e3 * time_call(lambda x=x, win=win: be.maxpool_forward(x, win), sync, repeats),
                "backward_ms": 1e3
                * time_call(
                    lambda y=y, arg=arg, shape=shape, win=win: be.maxpool_backward(y, arg, shape, win), sync, repeats
                ),
            }
        )
    return rows


def _products_row(be, label, cols, filters, rng, repeats):
    """The convolution's three matrix products alone, on whole-batch matrices: forward cols @ W; backward
    dW = cols^T @ dZ and dZ @ W^T (the Numba backend splits each between its threads, BLAS single-threaded)."""
    m, p = cols.shape
    w = be.asarray(rng.standard_normal((p, filters)).astype(np.float32))
    dz = be.asarray(rng.standard_normal((m, filters)).astype(np.float32))
    z, dw, dcols = be.xp.empty((m, filters), np.float32), be.xp.empty((p, filters), np.float32), be.xp.empty_like(cols)
    fwd = time_call(lambda: be.matmul(cols, w, out=z), be.synchronize, repeats)
    bwd = time_call(lambda: (be.weight_gradient(cols, dz, dw), be.matmul(dz, w.T, out=dcols)), be.synchronize, repeats)
    flops = 2 * m * p * filters
    return {
        "backend": be.name,
        "what": f"matrix products alone ({label})",
        "forward_ms": 1e3 * fwd,
        "backward_ms": 1e3 * bwd,
        "forward_gflops": flops / fwd / 1e9,
        "backward_gflops": 2 * flops / bwd / 1e9,
    }


def _fused_conv_row(be, label, x, p, filters, win, rng, repeats):
    """The backend's fused convolution called directly (no layer): forward with bias and ReLU, backward with dX."""
    kernel2d = be.asarray(rng.standard_normal((p, filters)).astype(np.float32))
    bias = be.asarray(rng.standard_normal(filters).astype(np.float32))
    z = be.conv2d_fused_forward(x, kernel2d, bias, win, True)
    dz = be.asarray(rng.standard_normal(z.shape).astype(np.float32))
    dw, db = be.xp.empty((p, filters), np.float32), be.xp.empty(filters, np.float32)
    fwd = time_call(lambda: be.conv2d_fused_forward(x, kernel2d, bias, win, True, out=z), be.synchronize, repeats)
    bwd = time_call(
        lambda: be.conv2d_fused_backward(x, dz, kernel2d, win, dw, db, relu_output=z), be.synchronize, repeats
    )
    return {
        "backend": be.name,
        "what": f"fused convolution kernels ({label})",
        "forward_ms": 1e3 * fwd,
        "backward_ms": 1e3 * bwd,
    }


def add_speedups(rows, baseline="numpy"):
    """Each row's ``speedup``: the ``baseline`` backend's forward + backward time for the same kernel over its own."""
    base = {r["what"]: r["forward_ms"] + r["backward_ms"] for r in rows if r["backend"] == baseline}
    for r in rows:
        if r["what"] in base:
            r["speedup"] = base[r["what"]] / (r["forward_ms"] + r["backward_ms"])


def grouped_chart(path, rows, title):
    """Horizontal bars grouped by kernel, one colour per backend, forward (solid) and backward (hatched) apart,
    log scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kernels = list(dict.fromkeys(r["what"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    height = 0.8 / (2 * len(backends))
    fig = Figure(figsize=(9, 0.5 * len(kernels) * len(backends) + 1.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for b, backend in enumerate(backends):
        times = {r["what"]: r for r in rows if r["backend"] == backend}
        for d, (key, hatch) in enumerate((("forward_ms", None), ("backward_ms", "//"))):
            ys = [k - 0.4 + height * (2 * b + d + 0.5) for k in range(len(kernels))]
            xs = [times[w][key] if w in times else 0 for w in kernels]
            ax.barh(
                ys,
                xs,
                height=height,
                color=f"C{b}",
                hatch=hatch,
                edgecolor="white",
                label=f"{backend} {'forward' if d == 0 else 'backward'}",
            )
    ax.set_yticks(range(len(kernels)), kernels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.savefig(path, bbox_inches="tight")


def matmul_ceiling(name, repeats):
    from minicnn.backend import get_backend

    be = get_backend(name)
    n = 2048
    a = be.asarray(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
    out = be.xp.empty((n, n), dtype=np.float32)
    seconds = time_call(lambda: be.xp.matmul(a, a, out=out), be.synchronize, max(3, repeats // 2))
    return 2 * n**3 / seconds / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="numpy,numba,cupy")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", default=os.path.join("benchmark-results", "kernels"))
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch < 1:
        parser.error("--repeats and --batch must be >= 1")
    from minicnn.backend import get_backend

    os.makedirs(args.out, exist_ok=True)
    rows, ceilings = [], {}
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        try:
            get_backend(name)
        except (ImportError, RuntimeError) as err:
            print(f"{name}: unavailable here, skipped ({str(err).splitlines()[0]})")
            continue
        print(f"{name}: timing ...", flush=True)
        rows += bench_backend(name, args.batch, args.repeats)
        ceilings[name] = matmul_ceiling(name, args.repeats)
    add_speedups(rows)
    table = markdown_table(
        rows, ["backend", "what", "forward_ms", "backward_ms", "forward_gflops", "backward_gflops", "speedup"]
    )
    info = machine_info()
    write_json(
        os.path.join(args.out, "kernels.json"),
        {
            "machine": info,
            "batch": args.batch,
            "repeats": args.repeats,
            "matmul_ceiling_gflops": ceilings,
            "results": rows,
        },
    )
    if rows:
        grouped_chart(os.path.join(args.out, "kernels.png"), rows, f"Kernels at batch {args.batch} (lower is better)")
    print(
        f"\nmachine: {info.get('cpu')}, {info.get('cpu_count')} cores, numba threads "
        f"{info.get('numba_threads')}, BLAS {info.get('blas')}; batch {args.batch}, median of {args.repeats}"
    )
    print("float32 matmul ceiling (2048^3): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in ceilings.items()))
    print(table)
    print(f"\nwrote {args.out}/kernels.json and kernels.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
