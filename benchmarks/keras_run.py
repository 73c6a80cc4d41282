"""The same recipe trained end to end in Keras 3, for the side-by-side figures of a full run.

    python -m benchmarks.keras_run [--recipe fashion_bn] [--epochs N] [--data-dir DIR] [--out DIR]

Builds the recipe's model in Keras (benchmarks.train.keras_model: the same layers, defaults and optimizer), trains
it as ``python -m minicnn.train`` does (batch 128, validation_split 0.2, the recipe's epochs), evaluates it on the
test set and prints one line per epoch, the test loss and accuracy and the seconds per epoch; writes
``keras_run.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from benchmarks.common import machine_info, write_json
from minicnn.cli import plain_text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="fashion_bn", choices=["tutorial", "fashion_bn"])
    parser.add_argument("--epochs", type=int, default=None, help="the recipe's by default")
    parser.add_argument("--data-dir", default=None, help="folder of the recipe's data set files")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=os.path.join("benchmark-results", "keras_run"))
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from benchmarks.train import keras_model
    from minicnn.datasets import fashion_mnist, mnist
    from minicnn.recipes import get_recipe
    from minicnn.train import prepare

    recipe = get_recipe(args.recipe)
    epochs = args.epochs or recipe.epochs
    (x, y), (xt, yt) = (mnist if recipe.dataset == "mnist" else fashion_mnist).load_data(args.data_dir)
    x, y = prepare(x, y)
    xt, yt_1h = prepare(xt, yt)
    keras.utils.set_random_seed(args.seed)
    model = keras_model(recipe.name)

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.t)

    clock = Clock()
    clock.seconds = []
    history = model.fit(x, y, batch_size=128, epochs=epochs, validation_split=0.2, verbose=2, callbacks=[clock])
    test_loss, test_acc = model.evaluate(xt, yt_1h, batch_size=128, verbose=0)
    print(
        f"keras {keras.__version__}: test loss {test_loss:.4f}, test accuracy {test_acc:.4f}; seconds per epoch "
        f"(fit, with validation): " + ", ".join(f"{s:.0f}" for s in clock.seconds)
    )
    os.makedirs(args.out, exist_ok=True)
    write_json(
        os.path.join(args.out, "keras_run.json"),
        {
            "recipe": recipe.name,
            "epochs": epochs,
            "history": history.history,
            "seconds": clock.seconds,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "machine": machine_info(),
            "version": keras.__version__,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
