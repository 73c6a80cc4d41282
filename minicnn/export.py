"""python -m minicnn.export: a trained model as an ONNX graph or a Keras .keras file.

The model comes from a .keras file (--model m.keras), or from the weights.npz that python -m minicnn.train writes
(--weights runs/.../weights.npz) with the recipe it was trained with (--recipe, tutorial by default). The format
follows --out's extension: .onnx (ONNX, opset 17: ONNX Runtime, onnx.reference, Netron) or .keras (Keras 3's
keras.models.load_model opens it).

Example:
    python -m minicnn.train --limit 512 --epochs 1 --out runs/quick
    python -m minicnn.export --weights runs/quick/weights.npz --out runs/quick/model.onnx
    python -m minicnn.export --weights runs/quick/weights.npz --out runs/quick/model.keras
"""

from __future__ import annotations

import argparse
import sys

from . import cli
from .models import load_model
from .onnx_export import OPSET
from .recipes import RECIPES, build_model
from .train import OneLineErrorParser, run_command


def build_parser():
    p = OneLineErrorParser(
        prog=cli.prog("minicnn.export", "minicnn-export"),
        description=cli.plain_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a .keras file (saved by model.save or by Keras 3)")
    source.add_argument("--weights", help="a weights.npz written by python -m minicnn.train (with --recipe)")
    p.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default="tutorial",
        help="the recipe the --weights were trained with (tutorial)",
    )
    p.add_argument("--out", required=True, help="the file to write: NAME.onnx or NAME.keras")
    p.add_argument("--opset", type=int, default=OPSET, help=f"the ONNX opset ({OPSET}, the oldest it supports)")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    cli.add_version(p)
    return p


def run(args) -> str:
    if not args.out.endswith((".onnx", ".keras")):
        raise ValueError(f"--out {args.out!r}: the file name must end in .onnx or .keras")
    if args.model:
        model = load_model(args.model)
    else:
        model = build_model(args.recipe, seed=0, backend="numpy")
        model.load_weights(args.weights)
    if args.out.endswith(".onnx"):
        model.export(args.out, opset=args.opset)
    else:
        model.save(args.out)
    print(f"wrote {args.out} ({model.count_params():,} weights, {len(model.layers)} layers)")
    return args.out


def main(argv=None) -> int:
    return run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
