"""Small helpers a tutorial needs."""

from __future__ import annotations

import os
import tempfile

import numpy as np


def to_categorical(y, num_classes: int | None = None, dtype="float32") -> np.ndarray:
    """One-hot encode integer labels: ``out[i, y[i]] = 1``, shape ``(len(y), num_classes)``.

    Example:
        >>> to_categorical([0, 2], 3)
        array([[1., 0., 0.],
               [0., 0., 1.]], dtype=float32)
    """
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"to_categorical expects integer labels, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"labels must be >= 0, found {y.min()}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(f"label {y.max()} is out of range for num_classes={num_classes}")
    out = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, y[..., None].astype(np.intp), 1, axis=-1)
    return out


def current_umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _cannot_write(path, err: OSError) -> OSError:
    """``err`` restated with the file's name (a write error that names no file is no help to anyone)."""
    reason = err.strerror or str(err)
    return (
        OSError(err.errno, f"cannot write {path}: {reason}") if err.errno else OSError(f"cannot write {path}: {reason}")
    )


def remove_stale_temporaries(directory, name) -> list[str]:
    """Remove the temporary files that a killed writer of ``name`` left in ``directory``
    (``.<name>.<pid>.<random>.tmp`` whose process is gone). Returns their paths."""
    removed = []
    prefix = f".{name}."
    for entry in os.listdir(directory):
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue  # still being written by a live process
        try:
            os.remove(os.path.join(directory, entry))
            removed.append(os.path.join(directory, entry))
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True


def check_writable_folder(path, what: str = "output folder") -> None:
    """An OSError naming ``path`` unless files can be created there: the folder, or (when it does not exist yet)
    its nearest existing parent, must be a folder that accepts a new file. Leaves nothing behind."""
    path = os.path.abspath(os.fspath(path))
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise OSError(f"{what} {path}: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".minicnn-probe-", dir=probe)
        os.close(fd)
        os.remove(tmp)
    except OSError as err:
        raise OSError(f"{what} {path}: cannot create files in {probe} ({err.strerror or err})") from None


def atomic_write(path, write_fn, mode="wb"):
    """Write a file so that it is either entirely the new content or untouched: ``write_fn(file)`` writes into a
    temporary file in the same folder, which then replaces ``path`` in one rename.

    The file gets the permissions a plain ``open()`` would give (0666 less the umask); the temporary file is
    removed on every way out, and those left by killed writers (``.<name>.<pid>.*.tmp``) are removed here. A
    write error is an OSError that names ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        remove_stale_temporaries(directory, os.path.basename(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise _cannot_write(path, err) from err
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp creates 0600, whatever the umask
        with os.fdopen(fd, mode) as fh:
            write_fn(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and not str(err).startswith("cannot write"):
            raise _cannot_write(path, err) from err
        raise
