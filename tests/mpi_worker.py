"""The program tests/test_distributed.py runs under ``mpiexec -n 2`` (and imports, to train the same model in one
process): the tutorial's CNN on a small synthetic set, so that no data set is needed.

``python tests/mpi_worker.py MODE OUT``; MODE is
- ``fit``: train in float32 and in float64, rank 0 writes ``OUT/float32.npz`` and ``OUT/float64.npz``; and in
  float32 on 214 samples (``OUT/empty_shard.npz``), whose last batch of 1 leaves rank 1 nothing;
- ``resume``: one epoch with a checkpoint, then a second model resumes it to two epochs; rank 0 writes
  ``OUT/resumed.npz``;
- ``nan``: rank 1's weights become infinite after the third step: every rank must stop there (the NaN check reads
  the global loss), rank 0 writes ``OUT/stopped.json``;
- ``fail``: rank 1 raises during the third step (the job must end, naming rank 1 and the cause);
- ``kill``: rank 1 kills itself (SIGKILL) during the third step.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np

# 218 samples, 21 held out (11 + 10 per rank), 197 trained in batches of 64: three full batches (32 + 32 per rank)
# and a last one of 5 (3 + 2): unequal shards
SAMPLES, BATCH, EPOCHS = 218, 64, 2


def data(samples=SAMPLES):
    rng = np.random.default_rng(0)
    x = rng.random((samples, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, samples)]
    return x, y


def train(
    dtype="float32", strategy=None, epochs=EPOCHS, checkpoint_dir=None, resume=False, callbacks=None, samples=SAMPLES
):
    """The tutorial's model (seed 3) after ``epochs`` of fit on :func:`data`; returns it and its history."""
    from minicnn.train import tutorial_model

    model = tutorial_model(seed=3, backend="numba", dtype=dtype)
    x, y = data(samples)
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=epochs,
        verbose=0,
        validation_split=0.1,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        callbacks=callbacks,
        distributed=strategy,
    )
    return model, history


def save(model, path, history=None):
    arrays = dict(model.named_weights())
    if history is not None:
        arrays.update({f"history/{k}": np.asarray(v) for k, v in history.history.items() if k != "seconds"})
    np.savez(path, **arrays)


def main(mode, out):
    from minicnn import distributed
    from minicnn.callbacks import Callback

    strategy = distributed.get_strategy(force=True)
    assert strategy.size == 2, f"run with mpiexec -n 2, not {strategy.size}"

    def work():
        if mode == "fit":
            for dtype in ("float32", "float64"):
                model, history = train(dtype, strategy)
                if strategy.is_root:
                    save(model, os.path.join(out, f"{dtype}.npz"), history)
            model, history = train(strategy=strategy, samples=214)  # 193 trained: 3 x 64 and a last batch of 1
            if strategy.is_root:
                save(model, os.path.join(out, "empty_shard.npz"), history)
        elif mode == "resume":

            class Epochs(Callback):  # which epochs the resumed fit runs (only the second, if it resumed)
                ran = []

                def on_epoch_begin(self, epoch, logs=None):
                    self.ran.append(epoch)

            train(strategy=strategy, epochs=1, checkpoint_dir=out)
            model, _ = train(strategy=strategy, epochs=2, checkpoint_dir=out, resume=True, callbacks=[Epochs()])
            if strategy.is_root:
                np.save(os.path.join(out, "epochs_run.npy"), np.array(Epochs.ran))
                save(model, os.path.join(out, "resumed.npz"))
        elif mode == "nan":

            class Poison(Callback):
                def on_train_batch_end(self, step, logs=None):
                    if strategy.rank == 1 and step == 2:
                        self.model.trainable_weights[0][...] = np.inf

            _, history = train(strategy=strategy, epochs=50, callbacks=[Poison()])
            if strategy.is_root:
                with open(os.path.join(out, "stopped.json"), "w") as fh:
                    json.dump(history.stopped, fh)
        else:

            class Fault(Callback):
                def on_train_batch_end(self, step, logs=None):
                    if strategy.rank == 1 and step == 2:
                        if mode == "kill":
                            os.kill(os.getpid(), signal.SIGKILL)
                        raise RuntimeError("bad data on purpose")

            train(strategy=strategy, epochs=50, callbacks=[Fault()])
        return 0

    return distributed.run_guarded(strategy, work)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
