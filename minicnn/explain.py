"""``python -m minicnn.explain``: see backpropagation at work on the tutorial's CNN.

Writes into ``--out``: ``trace.txt`` and ``trace.json`` (one training step, layer by layer: shapes, formulas,
matrix products, multiply-adds, time, statistics of activations and gradients, gradient norms and relative
updates), ``filters.png`` (the first convolution's kernels), ``feature_maps.png`` (each convolution's maps for
one test digit), ``saliency.png`` (which pixels move that digit's class score) and, when it trains, also
``gradient_norms.png``. Without ``--weights`` it first trains briefly (``--steps``, 150 by default) so that the
pictures show learned features rather than the random initial ones.
It also draws the traced step as a graph, ``graph.png``; ``--html`` adds ``index.html``, a self-contained page that
steps through the step layer by layer.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

import numpy as np

from . import cli
from .backend.cpu_threads import set_num_threads
from .cli import checked
from .datasets import fashion_mnist, mnist
from .page import capture_step, write_trace_page
from .plotting import plot_feature_maps, plot_filters, plot_gradient_norms, plot_saliency
from .recipes import RECIPES, build_model, get_recipe
from .train import OneLineErrorParser, prepare, run_command
from .training import GradientNormRecorder
from .utils import atomic_write, check_writable_folder

MAX_BATCH = 4096  # the trace keeps every layer's activations and gradients: about 0.4 MB per tutorial sample


def build_parser():
    p = OneLineErrorParser(
        prog=cli.prog("minicnn.explain", "minicnn-explain"),
        description=cli.plain_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default="tutorial",
        help="the model to trace: tutorial (on MNIST, the default) or fashion_bn (on Fashion-MNIST)",
    )
    p.add_argument("--weights", default=None, help="a weights.npz written by python -m minicnn.train")
    p.add_argument("--out", default=None, help="output folder (default: a new explain/<date-time> folder)")
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder of the recipe's data set files (default: $MINICNN_DATA, then the cache)",
    )
    p.add_argument(
        "--steps",
        type=checked(int, lambda v: v >= 0, "an integer >= 0"),
        default=150,
        help="training steps of batch 128 to take first when no --weights is given (150)",
    )
    p.add_argument(
        "--batch",
        type=checked(
            int,
            lambda v: 0 < v <= MAX_BATCH,
            f"an integer from 1 to {MAX_BATCH} (the trace keeps every layer's arrays)",
        ),
        default=32,
        help=f"size of the traced batch (32; at most {MAX_BATCH})",
    )
    p.add_argument(
        "--index",
        type=checked(int, lambda v: v >= 0, "an integer >= 0"),
        default=0,
        help="which test digit the feature maps and saliency show (0)",
    )
    cli.add_backend_and_threads(p)
    p.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seed of the initial weights, dropout and shuffling of the short training (42)",
    )
    p.add_argument(
        "--verbose",
        type=int,
        choices=[0, 1, 2],
        default=None,
        help="the short training's progress: 1 a live bar, 2 one line, 0 nothing (default: 1 on a terminal, else 2)",
    )
    p.add_argument(
        "--html",
        action="store_true",
        help="also write index.html: an interactive page stepping through the traced step (one file)",
    )
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    cli.add_version(p)
    return p


def run(args) -> dict:
    if args.threads:
        set_num_threads(args.threads)
    out = args.out or os.path.join("explain", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    check_writable_folder(out)  # made when the first file is written: a run that fails early leaves nothing
    recipe = get_recipe(args.recipe)
    loader = mnist if recipe.dataset == "mnist" else fashion_mnist
    (x_train, y_train), (x_test, y_test) = loader.load_data(args.data_dir)
    if args.index >= len(x_test):
        raise ValueError(f"--index must be below {len(x_test)}, got {args.index}")
    if args.steps > -(-len(x_train) // 128):
        raise ValueError(
            f"--steps {args.steps} is more than one pass over the {len(x_train)} training images "
            f"allows: at most {-(-len(x_train) // 128)} steps of 128"
        )
    model = build_model(recipe, seed=args.seed, backend=args.backend)
    written = []
    if args.weights:
        model.load_weights(args.weights)
        print(f"weights from {args.weights}")
    elif args.steps:
        n = min(len(x_train), args.steps * 128)
        x, y = prepare(x_train[:n], y_train[:n])
        print(f"no --weights: training {args.steps} steps of 128 first, so that the pictures show learned features")
        recorder = GradientNormRecorder(every=max(1, args.steps // 60))
        stopped = model.fit(
            x, y, batch_size=128, epochs=1, verbose=cli.resolve_verbose(args), callbacks=[recorder]
        ).stopped
        if stopped and stopped["reason"] == "interrupted":
            raise KeyboardInterrupt("reported")  # Ctrl-C stopped the training: stop the command too
        written.append(plot_gradient_norms(recorder, os.path.join(out, "gradient_norms.png")))
    else:
        print("no --weights and --steps 0: the pictures show the random initial weights")
    xb, yb = prepare(x_train[-args.batch :], y_train[-args.batch :])
    trace, arrays = capture_step(model, xb, yb) if args.html else (model.trace(xb, yb), None)
    text = str(trace)
    print(text)
    atomic_write(os.path.join(out, "trace.txt"), lambda fh: fh.write(text + "\n"), mode="w")
    atomic_write(os.path.join(out, "trace.json"), lambda fh: fh.write(trace.to_json()), mode="w")
    written += [os.path.join(out, "trace.txt"), os.path.join(out, "trace.json")]
    written.append(trace.plot_graph(os.path.join(out, "graph.png")))
    if args.html:
        written.append(write_trace_page(trace, arrays, os.path.join(out, "index.html")))
    image = x_test[args.index].reshape(28, 28, 1).astype(np.float32) / 255.0
    written.append(plot_filters(model, os.path.join(out, "filters.png")))
    written.append(plot_feature_maps(model, image, os.path.join(out, "feature_maps.png")))
    written.append(plot_saliency(model, image, int(y_test[args.index]), os.path.join(out, "saliency.png")))
    print(f"wrote {out}/: " + ", ".join(os.path.basename(p) for p in written))
    return {"out": out, "files": written}


def main(argv=None) -> int:
    return run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
