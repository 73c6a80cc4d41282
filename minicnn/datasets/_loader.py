"""Finding, downloading and checking the four idx files of an MNIST-like data set."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from .idx import DataFileError, read_bytes, read_idx


@dataclass(frozen=True)
class DatasetFile:
    name: str  # canonical file name, e.g. "train-images-idx3-ubyte.gz"
    shape: tuple  # the array it holds
    sha256: str | None  # of the DECOMPRESSED content, when known
    md5_gz: str | None  # of the .gz file on the mirrors, when known (checked on download)


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # "mnist"
    files: tuple  # train images, train labels, test images, test labels
    mirrors: tuple  # base URLs, tried in order
    env_subdirs: tuple  # where to look inside $MINICNN_DATA ("" is the folder itself)


def cache_dir(spec: DatasetSpec) -> str:
    """``~/.minicnn/datasets/<name>``, where downloads go."""
    return os.path.join(os.path.expanduser("~"), ".minicnn", "datasets", spec.name)


def _find(directory: str, f: DatasetFile) -> str | None:
    for candidate in (f.name, f.name.removesuffix(".gz")):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def candidate_dirs(spec: DatasetSpec, path=None) -> list[str]:
    """The folders searched, in order: ``path``; ``$MINICNN_DATA`` (and its sub-folders); the user cache."""
    dirs = []
    if path is not None:
        dirs.append(os.fspath(path))
    env = os.environ.get("MINICNN_DATA")
    if env:
        dirs += [os.path.join(env, sub) if sub else env for sub in spec.env_subdirs]
    dirs.append(cache_dir(spec))
    return dirs


def locate(spec: DatasetSpec, path=None) -> list[str] | None:
    """Paths of the four files from the first folder that holds all four, else None."""
    for directory in candidate_dirs(spec, path):
        found = [_find(directory, f) for f in spec.files]
        if all(found):
            return found
    return None


def _md5(path):
    with open(path, "rb") as fh:
        return hashlib.md5(fh.read()).hexdigest()


def download(spec: DatasetSpec, progress: bool = True, path=None) -> list[str]:
    """Download the four files into the cache from the first mirror that serves them intact.

    Each file is verified (md5 of the .gz where known, sha256 of its decompressed content where known) before
    it is kept; a file that fails is removed and the next mirror is tried.
    """
    import pooch

    target = cache_dir(spec)
    os.makedirs(target, exist_ok=True)
    paths, failures = [], []
    for f in spec.files:
        for base in spec.mirrors:
            try:
                local = pooch.retrieve(base + f.name, known_hash=None, fname=f.name, path=target, progressbar=progress)
                if f.md5_gz and not f.sha256 and _md5(local) != f.md5_gz:
                    raise DataFileError(f"{local}: md5 {_md5(local)} differs from the mirror's {f.md5_gz}")
                if f.sha256 and hashlib.sha256(read_bytes(local)).hexdigest() != f.sha256:
                    raise DataFileError(f"{local}: decompressed content does not match sha256 {f.sha256}")
                paths.append(local)
                break
            except Exception as err:  # network errors of every kind: try the next mirror, report them all
                failures.append(f"{base + f.name}: {err}")
                if os.path.exists(os.path.join(target, f.name)):
                    os.remove(os.path.join(target, f.name))
        else:
            raise DataFileError(missing_message(spec, failures, path))
    return paths


def missing_message(spec: DatasetSpec, failures=(), path=None) -> str:
    names = ", ".join(f.name for f in spec.files)
    where = "\n  ".join(dict.fromkeys(candidate_dirs(spec, path)))
    tried = ("\nDownload attempts failed:\n  " + "\n  ".join(failures[-len(spec.mirrors) :])) if failures else ""
    return (
        f"{spec.name}: the files {names} were not found (gzip-compressed or not) in any of:\n  {where}\n"
        f"Put them into one of those folders, set the MINICNN_DATA environment variable to the folder that "
        f"holds them, or pass load_data(path=...). With internet they are downloaded from "
        f"{spec.mirrors[0]}.{tried}"
    )


def load(spec: DatasetSpec, path=None, download_if_missing: bool = True):
    """((x_train, y_train), (x_test, y_test)) as uint8 arrays, every file checked.

    ``MINICNN_OFFLINE=1`` in the environment forbids the download (the error then says what to put where).
    """
    paths = locate(spec, path)
    if paths is None:
        if not download_if_missing or os.environ.get("MINICNN_OFFLINE") == "1":
            raise DataFileError(missing_message(spec, path=path))
        paths = download(spec, path=path)
    arrays = [read_idx(p, sha256=f.sha256, shape=f.shape) for p, f in zip(paths, spec.files)]
    x_train, y_train, x_test, y_test = arrays
    if y_train.max() > 9 or y_test.max() > 9:
        raise DataFileError(f"{paths[1]}: labels must be 0..9, found {max(y_train.max(), y_test.max())}")
    return (x_train.astype(np.uint8), y_train.astype(np.uint8)), (x_test.astype(np.uint8), y_test.astype(np.uint8))
