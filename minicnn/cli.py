"""What the commands share beyond ``minicnn.train``'s parser helpers: plain-text help from reST docstrings, the
``--verbose``/``--quiet``/``--version`` options, and the logging callbacks ``--csv`` and ``--tensorboard`` ask for."""

from __future__ import annotations

import argparse
import os
import re
import sys

from .progress import is_terminal

_ROLE = re.compile(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")  # :class:`~minicnn.Sequential` -> minicnn.Sequential
_LITERAL = re.compile(r"``(.+?)``")
_INTERPRETED = re.compile(r"(?<![`\w])`([^`]+)`(?!`)")


def plain_text(doc: str) -> str:
    """A module docstring as ``--help`` shows it: reST roles and literals (``x``, :class:`X`) reduced to their text,
    a ``::`` literal-block marker to ``:``."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).find("~") > 0 else m.group(1), doc)
    text = _LITERAL.sub(r"\1", text)
    text = _INTERPRETED.sub(r"\1", text)
    return re.sub(r"::(\s*\n)", r":\1", text).strip() + "\n"


def prog(module: str, script: str) -> str:
    """The command's name in its usage line: ``script`` when run as that console script, else ``python -m module``."""
    return script if os.path.basename(sys.argv[0]) == script else f"python -m {module}"


def checked(convert, ok, expected):
    """An argparse type: ``convert(text)`` that must satisfy ``ok``, else one line saying what was expected."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


positive_int = checked(int, lambda v: v > 0, "a positive integer")


def add_backend_and_threads(parser: argparse.ArgumentParser) -> None:
    """``--backend`` (numpy, numba, cupy) and ``--threads N``, the same in every command."""
    from .backend import BACKEND_NAMES

    parser.add_argument(
        "--backend",
        choices=list(BACKEND_NAMES),
        default=None,
        help="numpy, numba or cupy (default: $MINICNN_BACKEND, else numba)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads (default: the cores this process may use; results are bitwise reproducible "
        "for a fixed thread count)",
    )


def add_version(parser: argparse.ArgumentParser) -> None:
    from . import __version__

    parser.add_argument(
        "--version", action="version", version=f"minicnn {__version__}", help="print the version of minicnn and exit"
    )


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """``--verbose 0|1|2`` (Keras's values) and ``--quiet``, its deprecated old spelling of ``--verbose 2``."""
    parser.add_argument(
        "--verbose",
        type=int,
        choices=[0, 1, 2],
        default=None,
        help="1: a live progress bar; 2: one line per epoch; 0: only the results (default: 1 on a "
        "terminal, 2 when the output goes to a file or a pipe)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="deprecated: the same as --verbose 2 (one line per epoch), which it meant"
    )


def resolve_verbose(args, stream=None) -> int:
    """The verbosity a run uses: ``--verbose``, else 2 for ``--quiet`` (with a note on stderr), else 1 on a terminal
    and 2 when ``stream`` (stdout) is a file or a pipe, so that a log holds one line per epoch."""
    quiet = getattr(args, "quiet", False)
    if args.verbose is not None:
        if quiet and args.verbose != 2:
            raise ValueError(f"--quiet means --verbose 2; it contradicts --verbose {args.verbose}")
        return args.verbose
    if quiet:
        print("note: --quiet is deprecated, use --verbose 2 (one line per epoch)", file=sys.stderr)
        return 2
    return 1 if is_terminal(stream or sys.stdout) else 2


def add_logging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csv",
        default=None,
        metavar="FILE",
        help="write the metrics of every epoch to this CSV file (Keras's CSVLogger)",
    )
    parser.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="write TensorBoard event files into DIR (train/, validation/; needs tensorboardX: "
        "pip install 'minicnn[tensorboard]'), view with tensorboard --logdir DIR",
    )


def logging_callbacks(args) -> list:
    """The callbacks that ``--csv`` and ``--tensorboard`` ask for."""
    from .callbacks import CSVLogger, TensorBoard

    found = []
    if args.csv:
        found.append(CSVLogger(args.csv))
    if args.tensorboard:
        found.append(TensorBoard(args.tensorboard))
    return found
