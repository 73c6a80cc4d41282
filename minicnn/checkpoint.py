"""Checkpoints: everything needed to continue training exactly where it stopped.

One file, ``<dir>/checkpoint.npz``, rewritten atomically at the end of every epoch (a temporary file, then one
rename: a crash while writing leaves the previous checkpoint whole). It holds:

- every weight (``weights/<layer>/<weight>``) and the optimizer's state (``optimizer/<slot>/<k>``, ``k`` counting
  the trainable weights);
- ``meta``, JSON: the number of completed epochs, the history so far, the model's seed, the optimizer's
  configuration and iteration count, and the run's settings (see minicnn.run_settings).

The random state needs no saving: ``fit`` draws each epoch's shuffling and dropout masks from streams seeded by
(seed, epoch), so epoch ``e`` is the same whether or not the run was interrupted before it.

Loading reads and checks the whole file first (every array, the meta's fields and their agreement, the optimizer
state, the settings): a bad or foreign checkpoint is one ValueError naming the file, and changes nothing.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .run_settings import check_resume
from .utils import atomic_write, check_writable_folder
from .weight_files import check_array, read_npz, select_named

FILENAME = "checkpoint.npz"


def checkpoint_path(directory) -> str:
    return os.path.join(os.fspath(directory), FILENAME)


def training_state(model, epochs_done: int, history) -> dict:
    """Host copies of everything a checkpoint holds, taken now (weights, optimizer state, history so far)."""
    return {
        "weights": dict(model.named_weights()),
        "optimizer": model.optimizer.get_state(),
        "meta": {
            "epochs_done": epochs_done,
            "history": {k: list(v) for k, v in history.history.items()},
            "params": dict(history.params),
            "seed": model.seed,
            "optimizer": model.optimizer.get_config(),
            "settings": getattr(history, "settings", None),
        },
    }


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


def _count(meta, key, path) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{path}: damaged checkpoint: its meta has {key}={value!r}, expected an int >= 0")
    return value


def read_meta(arrays: dict, path: str) -> dict:
    """The checkpoint's meta, checked: JSON, ``epochs_done`` and ``iterations`` counts, a history with one value
    per completed epoch for every metric."""
    if "meta" not in arrays:
        raise ValueError(f"{path}: not a minicnn checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError as err:
        raise ValueError(f"{path}: damaged checkpoint: its meta is not JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: damaged checkpoint: its meta is a {type(meta).__name__}, not a JSON object")
    done = _count(meta, "epochs_done", path)
    _count(meta, "iterations", path)
    history = meta.get("history", {})
    if not isinstance(history, dict):
        raise ValueError(f"{path}: damaged checkpoint: its history is not a JSON object")
    for key, values in history.items():
        if (
            not isinstance(values, list)
            or len(values) != done
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ):
            got = f"{len(values)} values" if isinstance(values, list) else repr(values)
            raise ValueError(
                f"{path}: damaged checkpoint: history[{key!r}] holds {got}, expected {done} numbers "
                f"(one per completed epoch)"
            )
    if meta.get("settings") is not None and not isinstance(meta["settings"], dict):
        raise ValueError(f"{path}: damaged checkpoint: its settings are not a JSON object")
    return meta


def optimizer_state(model, arrays: dict, meta: dict, path: str) -> dict:
    """The optimizer state in the checkpoint, checked against the model's trainable weights (every slot present
    once the optimizer has made an update, shapes, finite values)."""
    params = model.trainable_weights
    state = {"iterations": meta["iterations"]}
    for slot in model.optimizer.slot_names:
        keys = [f"optimizer/{slot}/{k}" for k in range(len(params))]
        present = [key for key in keys if key in arrays]
        if not present and meta["iterations"] == 0:
            continue  # saved before the first update: the state starts from zero anyway
        if len(present) != len(keys):
            raise ValueError(
                f"{path}: the optimizer state {slot!r} is missing or incomplete ({len(present)} of "
                f"{len(keys)} arrays) after {meta['iterations']} updates; resuming would restart "
                f"{type(model.optimizer).__name__} from scratch"
            )
        values = [check_array(arrays[key], repr(key), path) for key in keys]
        for key, value, p in zip(keys, values, params):
            if tuple(value.shape) != tuple(p.shape):
                raise ValueError(
                    f"{path}: {key!r} has shape {tuple(value.shape)}, the weight it belongs to {tuple(p.shape)}"
                )
        state[slot] = values
    return state


def load_checkpoint(model, directory, settings: dict | None = None, allow_changed=()) -> dict:
    """Restore weights and optimizer state into ``model``; returns the checkpoint's meta (epochs_done, history).

    Everything is read and checked before the model changes. With ``settings`` (the resuming run's, see
    minicnn.run_settings), a checkpoint written with other settings is refused unless ``allow_changed`` lists
    every difference."""
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{directory}: is a file, expected the checkpoint folder")
    path = checkpoint_path(directory)
    if not os.path.exists(path):
        raise ValueError(f"no checkpoint to resume from: {path} does not exist")
    arrays = read_npz(path, "checkpoint")
    meta = read_meta(arrays, path)
    weights = {k[len("weights/") :]: v for k, v in arrays.items() if k.startswith("weights/")}
    select_named(model.named_shapes(), weights, path)
    if settings is not None:
        meta["changed"] = check_resume(meta.get("settings"), settings, allow_changed, path)
    state = optimizer_state(model, arrays, meta, path)
    model.set_named_weights(weights, path)
    model.optimizer.set_state(state, model.trainable_weights)
    return meta


def prepare_checkpointing(
    model, directory, resume: bool, overwrite: bool, history, settings: dict, allow_changed=()
) -> int:
    """What ``fit`` does with ``checkpoint_dir`` before training: records the run's ``settings`` in ``history``,
    checks that the folder can be written, then either resumes (restoring the checkpoint and the history it
    holds; returns the number of epochs done) or, for a new run, refuses to replace an existing checkpoint unless
    ``overwrite``. Returns the epoch to start from."""
    history.settings = settings
    if resume and directory is None:
        raise ValueError("resume=True needs checkpoint_dir=... (where the checkpoint is)")
    if directory is None:
        return 0
    if not os.fspath(directory):
        raise ValueError("checkpoint_dir is empty: give a folder (checkpoint_dir='.' for the current one)")
    check_writable_folder(directory, "checkpoint folder")
    if not resume:
        path = checkpoint_path(directory)
        if os.path.lexists(path) and not overwrite:
            raise ValueError(
                f"{path} already exists: resume=True (--resume) continues that run, overwrite=True "
                f"(--overwrite) starts again and replaces it"
            )
        return 0
    meta = load_checkpoint(model, directory, settings, allow_changed)
    done = meta["epochs_done"]
    for e in range(done):
        history.append(e, {k: v[e] for k, v in meta["history"].items() if k != "seconds"})
    history.history["seconds"] = list(meta["history"].get("seconds", []))
    return done
