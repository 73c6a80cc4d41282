"""``python -m minicnn.train``: the R keras MNIST tutorial, end to end (or another recipe).

Loads MNIST, scales pixels by 1/255, one-hot encodes labels, trains the tutorial's CNN with Adadelta
(learning rate 1.0, rho 0.95, epsilon 1e-7), batch 128, 10 epochs, validation_split 0.2, evaluates on the test
set and counts the misclassified digits. Writes into ``--out``: history.png, misclassified.png, weights.npz,
metrics.json.

``--recipe fashion_bn`` trains a BatchNormalization CNN with Adam on Fashion-MNIST instead (15 epochs; see
minicnn/recipes.py); ``--optimizer`` and ``--learning-rate`` change either recipe's optimizer.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

from . import __version__, cli
from .backend import get_backend
from .backend.cpu_threads import set_num_threads
from .cli import checked
from .datasets import fashion_mnist, mnist
from .interrupts import is_interrupt
from .optimizers import OPTIMIZERS
from .outputs import check_output_folder, write_results
from .recipes import RECIPES, build_model, get_recipe
from .run_settings import SAFE_TO_CHANGE, thread_count
from .utils import to_categorical

OUTPUT_FILES = ("weights.npz", "metrics.json", "history.png", "misclassified.png")
TUTORIAL = {"test_loss": 0.0230, "test_accuracy": 0.9930, "misclassified": 70}
# each data set's results are compared only with figures of the same recipe on the same data set
REFERENCES = {
    ("tutorial", "mnist"): ("the R keras tutorial, 10 epochs", TUTORIAL),
    ("fashion_bn", "fashion_mnist"): (
        "Keras 3.15.1 on this recipe, 15 epochs; docs/performance.md",
        {"test_loss": 0.2022, "test_accuracy": 0.9296},
    ),
}


def tutorial_model(seed=None, backend=None, learning_rate=1.0, dtype="float32"):
    """The tutorial's CNN, compiled with Adadelta (rho 0.95, epsilon 1e-7): 186,110 parameters."""
    return build_model("tutorial", seed=seed, backend=backend, learning_rate=learning_rate, dtype=dtype)


def prepare(images, labels):
    """uint8 (N, 28, 28) images and labels -> float32 (N, 28, 28, 1) in [0, 1] and one-hot (N, 10)."""
    return images.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0, to_categorical(labels, 10)


_positive_int = cli.positive_int
_non_negative_int = checked(int, lambda v: v >= 0, "an integer >= 0")
_fraction = checked(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
_positive_float = checked(float, lambda v: 0 < v < float("inf"), "a positive number")


def setting_names(text):
    """An argparse type: a comma-separated list of settings that may change on resume."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SAFE_TO_CHANGE]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected settings among {', '.join(SAFE_TO_CHANGE)}, got {text!r}")
    return names


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``error: ...``, and exit status 2 (``--help`` explains)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser():
    p = OneLineErrorParser(
        prog=cli.prog("minicnn.train", "minicnn-train"),
        description=cli.plain_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default="tutorial",
        help="the model and its settings: tutorial (the default) or fashion_bn (see minicnn/recipes.py)",
    )
    p.add_argument(
        "--epochs",
        type=_non_negative_int,
        default=None,
        help="passes over the training set (the recipe's: tutorial 10, fashion_bn 15)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=128, help="samples per training step (128)")
    p.add_argument(
        "--validation-split",
        type=_fraction,
        default=0.2,
        help="fraction of the training set, taken from its end, held out for validation (0.2)",
    )
    p.add_argument(
        "--optimizer",
        choices=list(OPTIMIZERS),
        default=None,
        help="the optimizer (the recipe's: tutorial adadelta, fashion_bn adam)",
    )
    p.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=None,
        help="the optimizer's learning rate (the recipe's: tutorial 1.0, fashion_bn 0.001; another "
        "--optimizer: its Keras default)",
    )
    p.add_argument("--seed", type=int, default=42, help="seed of initial weights, dropout and shuffling (42)")
    p.add_argument(
        "--dataset",
        choices=["mnist", "fashion_mnist"],
        default=None,
        help="data set (the recipe's: tutorial mnist, fashion_bn fashion_mnist)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the four idx files (default: $MINICNN_DATA, then ~/.minicnn/datasets)",
    )
    p.add_argument(
        "--limit", type=_positive_int, default=None, help="use only the first N training images, for a quick run"
    )
    cli.add_backend_and_threads(p)
    p.add_argument("--out", default=None, help="output folder (default: a new runs/<date-time> folder)")
    cli.add_verbose(p)
    cli.add_logging(p)
    p.add_argument(
        "--checkpoint-dir",
        default=None,
        type=checked(str, bool, "a folder name"),
        help="write a checkpoint there at the end of every epoch (weights, optimizer state, history)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --checkpoint-dir; --epochs still counts the total; the "
        "run's other settings must be those the checkpoint records",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start again, replacing the checkpoint in --checkpoint-dir (without it an existing "
        "checkpoint is never replaced)",
    )
    p.add_argument(
        "--allow-changed",
        type=setting_names,
        default=(),
        metavar="SETTING[,SETTING]",
        help=f"with --resume, accept these settings changed since the checkpoint: "
        f"{', '.join(SAFE_TO_CHANGE)} (optimizer: its learning rate and other settings)",
    )
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    cli.add_version(p)
    return p


def run(args, strategy=None) -> dict:
    if args.threads:
        set_num_threads(args.threads)
    backend = get_backend(args.backend)
    root = strategy is None or strategy.is_root  # under mpiexec (minicnn.distributed) only rank 0 writes
    if strategy is not None:
        strategy.use_backend(backend)
    recipe = get_recipe(args.recipe)
    args.dataset = args.dataset or recipe.dataset
    args.epochs = recipe.epochs if args.epochs is None else args.epochs
    loader = mnist if args.dataset == "mnist" else fashion_mnist
    out = args.out or os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    if root:
        check_output_folder(out, OUTPUT_FILES)  # before training; the folder itself is made when results are written

    (x_train, y_train), (x_test, y_test) = loader.load_data(args.data_dir)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    x_train, y_train_1h = prepare(x_train, y_train)
    x_test_f, y_test_1h = prepare(x_test, y_test)

    model = build_model(
        recipe, seed=args.seed, backend=backend, optimizer=args.optimizer, learning_rate=args.learning_rate
    )
    args.optimizer, args.learning_rate = type(model.optimizer).__name__, model.optimizer.learning_rate
    verbose = cli.resolve_verbose(args)
    n_val = int(len(x_train) * args.validation_split)  # fit holds out the last fraction (Keras's split)
    if verbose:
        model.summary()
    print(
        f"backend: {backend.name}; recipe {recipe.name}: {args.optimizer} (learning rate {args.learning_rate:g}); "
        f"training on {len(x_train) - n_val} images, validating on {n_val} ({args.dataset}, "
        f"validation_split {args.validation_split})"
    )
    started = time.perf_counter()
    if args.resume and not args.checkpoint_dir:
        raise ValueError("--resume needs --checkpoint-dir DIR (the folder holding checkpoint.npz)")
    history = model.fit(
        x_train,
        y_train_1h,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=verbose,
        validation_split=args.validation_split,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        distributed=strategy,
        callbacks=cli.logging_callbacks(args) if root else None,
        overwrite=args.overwrite,
        allow_changed=args.allow_changed,
        settings={"recipe": recipe.name, "dataset": args.dataset, "limit": args.limit},
    )
    if history.stopped and history.stopped["reason"] == "interrupted":
        raise KeyboardInterrupt("reported")  # fit has said where it stopped and what it saved
    train_seconds = time.perf_counter() - started
    if strategy is None:
        test_loss, test_acc = model.evaluate(x_test_f, y_test_1h, batch_size=args.batch_size, verbose=0)
        predicted = model.predict_classes(x_test_f, batch_size=args.batch_size)
    else:  # sharded across the ranks, then reduced
        test_loss, test_acc, predicted = strategy.evaluate_and_predict(model, x_test_f, y_test_1h, args.batch_size)
    wrong = int((predicted != y_test).sum())
    tutorial = recipe.name == "tutorial" and args.dataset == "mnist"
    reference = REFERENCES.get((recipe.name, args.dataset))
    print(
        f"test loss {test_loss:.4f}, test accuracy {test_acc:.4f}, misclassified {wrong} of {len(y_test)}"
        + (
            f" ({reference[0]}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in reference[1].items()) + ")"
            if reference
            else ""
        )
    )

    if not root:
        return {"test_loss": test_loss, "test_accuracy": test_acc, "misclassified": wrong}
    metrics = {
        "recipe": recipe.name,
        "optimizer": args.optimizer,
        "dataset": args.dataset,
        "backend": backend.name,
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "validation_split": args.validation_split,
        "learning_rate": args.learning_rate,
        "train_images": int(len(x_train) - n_val),
        "validation_images": n_val,
        "params": history.params,
        "threads": thread_count(backend),
        "history": history.history,
        "train_seconds": train_seconds,
        "stopped": history.stopped,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "misclassified": wrong,
        "tutorial": TUTORIAL if tutorial else None,
        "reference": dict(reference[1], source=reference[0]) if reference else None,
        "versions": {
            "minicnn": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            **_optional_versions(),
        },
    }
    from .plotting import plot_history, plot_misclassified

    plots = [
        (
            "misclassified.png",
            lambda path: plot_misclassified(
                x_test,
                y_test,
                predicted,
                path,
                class_names=fashion_mnist.CLASS_NAMES if args.dataset == "fashion_mnist" else None,
            ),
        )
    ]
    if history.epoch:
        plots.insert(0, ("history.png", lambda path: plot_history(history, path)))
    names = write_results(out, model, metrics, plots)
    print(f"wrote {out}/: {', '.join(names)}")
    return metrics


def _optional_versions():
    versions = {}
    for name in ("numba", "cupy", "matplotlib"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return versions


def run_command(parser, run_fn, argv=None) -> int:
    """Parse ``argv``, call ``run_fn(args)``; a problem with the data or a value prints one line, ``error: ...``,
    and returns 2 (``--debug`` shows the traceback instead); Ctrl-C returns 130."""
    args = parser.parse_args(argv)
    try:
        run_fn(args)
    except (KeyboardInterrupt, SystemError) as err:
        if not is_interrupt(err):
            raise
        if not (isinstance(err, KeyboardInterrupt) and err.args):
            print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv=None) -> int:
    from .distributed import get_strategy, run_guarded

    strategy = get_strategy()  # under mpiexec/srun with 2+ ranks: data-parallel (mpi4py imported only then)
    return run_guarded(strategy, run_command, build_parser(), lambda args: run(args, strategy), argv)


if __name__ == "__main__":
    sys.exit(main())
