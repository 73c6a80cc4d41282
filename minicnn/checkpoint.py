"""Checkpoints: everything needed to continue training exactly where it stopped.

One file, ``<dir>/checkpoint.npz``, rewritten atomically at the end of every epoch (a temporary file, then one
rename: a crash while writing leaves the previous checkpoint whole). It holds:

- every weight (``weights/<layer>/<weight>``) and the optimizer's state (``optimizer/<slot>/<k>``, ``k`` counting
  the trainable weights);
- ``meta``, JSON: the number of completed epochs, the history so far, the model's seed, the optimizer's
  configuration and iteration count.

The random state needs no saving: ``fit`` draws each epoch's shuffling and dropout masks from streams seeded by
(seed, epoch), so epoch ``e`` is the same whether or not the run was interrupted before it.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .utils import atomic_write

FILENAME = "checkpoint.npz"


def checkpoint_path(directory) -> str:
    return os.path.join(os.fspath(directory), FILENAME)


def training_state(model, epochs_done: int, history) -> dict:
    """Host copies of everything a checkpoint holds, taken now (weights, optimizer state, history so far)."""
    return {"weights": dict(model.named_weights()), "optimizer": model.optimizer.get_state(),
            "meta": {"epochs_done": epochs_done, "history": {k: list(v) for k, v in history.history.items()},
                     "params": dict(history.params), "seed": model.seed, "optimizer": model.optimizer.get_config()}}


def save_checkpoint(model, directory, epochs_done: int, history, state: dict | None = None) -> str:
    """Write the checkpoint after ``epochs_done`` completed epochs (or the ``state`` taken earlier by
    :func:`training_state`); returns its path."""
    state = training_state(model, epochs_done, history) if state is None else state
    arrays = {f"weights/{name}": w for name, w in state["weights"].items()}
    for slot in model.optimizer.slot_names:
        for k, a in enumerate(state["optimizer"].get(slot, [])):
            arrays[f"optimizer/{slot}/{k}"] = a
    meta = {**state["meta"], "iterations": state["optimizer"]["iterations"]}
    arrays["meta"] = np.array(json.dumps(meta))
    path = checkpoint_path(directory)
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return path


def load_checkpoint(model, directory) -> dict:
    """Restore weights and optimizer state into ``model``; returns the checkpoint's meta (epochs_done, history)."""
    path = checkpoint_path(directory)
    if not os.path.isfile(path):
        raise ValueError(f"no checkpoint to resume from: {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable minicnn checkpoint ({err})") from err
    with data:
        if "meta" not in data.files:
            raise ValueError(f"{path}: not a minicnn checkpoint (no 'meta' entry)")
        meta = json.loads(str(data["meta"]))
        model.set_named_weights({k[len("weights/"):]: data[k] for k in data.files if k.startswith("weights/")}, path)
        params = model.trainable_weights   # what the optimizer's state is kept for
        state = {"iterations": meta["iterations"]}
        for slot in model.optimizer.slot_names:
            keys = [f"optimizer/{slot}/{k}" for k in range(len(params))]
            if all(key in data.files for key in keys):
                state[slot] = [data[key] for key in keys]
        model.optimizer.set_state(state, params)
    return meta
