"""Callbacks that record the metrics outside the program: CSVLogger (one row per epoch) and TensorBoard (scalar
event files that ``tensorboard --logdir DIR`` shows)."""

from __future__ import annotations

import csv
import os
import time

from .base import Callback


class CSVLogger(Callback):
    """Write one row per epoch to ``filename``: ``epoch`` (from 0) then the logs' keys in sorted order, as Keras
    does (with no validation keys, empty ``val_*`` columns are added and filled with ``NA``). ``append=True``
    continues an existing file (its header is kept); ``separator`` separates the fields. Each row is flushed at once,
    so that the file can be read while training runs.

    Example:
        >>> model.fit(x, y, epochs=10, callbacks=[CSVLogger("training.csv")])   # doctest: +SKIP
    """

    def __init__(self, filename, separator: str = ",", append: bool = False):
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.file = self.writer = self.keys = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as fh:
                self.append_header = not fh.readline()
        self.close()
        directory = os.path.dirname(os.path.abspath(self.filename))
        os.makedirs(directory, exist_ok=True)
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(
                self.file, fieldnames=["epoch"] + self.keys, delimiter=self.sep, lineterminator="\r\n"
            )
            if self.append_header:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{key: logs.get(key, "NA") for key in self.keys}})
        self.file.flush()

    def close(self):
        if self.file is not None and not self.file.closed:
            self.file.close()

    def on_train_end(self, logs=None):
        self.close()
        self.writer = None


class TensorBoard(Callback):
    """Scalar summaries for TensorBoard, laid out as Keras lays them out: ``log_dir/train`` holds ``epoch_loss``,
    ``epoch_accuracy`` and ``epoch_learning_rate`` at step ``epoch``; ``log_dir/validation`` the ``val_*`` metrics
    under the same names, and again as ``evaluation_loss_vs_iterations`` (...) at the optimizer's step count.
    ``update_freq`` ("epoch", or every N steps) also writes ``batch_loss`` and ``batch_accuracy`` (the epoch's
    running means) at the global step. Written with tensorboardX (``pip install 'minicnn[tensorboard]'``); view
    them with ``tensorboard --logdir log_dir``.

    Example:
        >>> model.fit(x, y, epochs=10, callbacks=[TensorBoard("logs/run1")])   # doctest: +SKIP
    """

    def __init__(self, log_dir="logs", update_freq="epoch"):
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"update_freq must be 'epoch' or a positive number of steps, got {update_freq!r}")
        self.log_dir, self.update_freq = os.fspath(log_dir), update_freq
        self.writers: dict = {}
        self.global_step = 0

    def writer(self, kind: str):
        """The event writer of ``log_dir/kind`` ("train" or "validation"), opened on first use."""
        if kind not in self.writers:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise ImportError(
                    "the TensorBoard callback writes with tensorboardX: "
                    "pip install 'minicnn[tensorboard]' (or pip install tensorboardX)"
                ) from None
            self.writers[kind] = SummaryWriter(os.path.join(self.log_dir, kind))
        return self.writers[kind]

    def on_train_begin(self, logs=None):
        self.writer("train")  # fail before the first epoch, not after it, when tensorboardX is missing
        self.started = time.time()

    def on_train_batch_end(self, batch, logs=None):
        step, self.global_step = self.global_step, self.global_step + 1
        if self.update_freq == "epoch" or (step + 1) % self.update_freq:
            return
        for name, value in (logs or {}).items():
            self.writer("train").add_scalar(f"batch_{name}", float(value), step)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        optimizer = getattr(self.model, "optimizer", None)
        if "learning_rate" not in logs and getattr(optimizer, "learning_rate", None) is not None:
            logs["learning_rate"] = float(optimizer.learning_rate)
        iterations = getattr(optimizer, "iterations", None)
        for name, value in logs.items():
            kind = "validation" if name.startswith("val_") else "train"
            self.writer(kind).add_scalar(f"epoch_{name.removeprefix('val_')}", float(value), epoch)
            if kind == "validation" and iterations is not None:  # Keras also plots validation against steps
                self.writer(kind).add_scalar(f"evaluation_{name[4:]}_vs_iterations", float(value), int(iterations))
        for w in self.writers.values():
            w.flush()

    def on_train_end(self, logs=None):
        for w in self.writers.values():
            w.close()
        self.writers = {}
