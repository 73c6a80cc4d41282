"""The idx file format of MNIST-like data sets, read and checked.

Layout (big-endian): two zero bytes; a type code (0x08 = uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64); the number of dimensions ``d``; ``d`` uint32 sizes; then the data, row-major.
Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib

import numpy as np

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataFileError(ValueError):
    """A data file is missing, unreadable, truncated, corrupt or not what was expected. The message names it."""


def read_bytes(path) -> bytes:
    """The (decompressed, for ``.gz``) content of ``path``; a clear DataFileError when it cannot be read."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise DataFileError(f"{path}: cannot be read ({err.strerror or err})") from err
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the name says
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise DataFileError(f"{path}: corrupt or truncated gzip data ({err})") from err
    if path.endswith(".gz"):
        raise DataFileError(f"{path}: named .gz but is not gzip data (first bytes {raw[:4].hex()})")
    return raw


def parse_idx(content: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode idx ``content`` into an array; DataFileError naming ``name`` on a bad header or size."""
    if len(content) < 4:
        raise DataFileError(f"{name}: {len(content)} bytes is too short for an idx header")
    if content[0] != 0 or content[1] != 0 or content[2] not in IDX_TYPES:
        raise DataFileError(
            f"{name}: wrong idx magic number {content[:4].hex()} (expected 0000 then a type "
            f"code in {sorted(hex(t) for t in IDX_TYPES)} and the number of dimensions)"
        )
    ndim = content[3]
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataFileError(f"{name}: truncated header ({len(content)} bytes, expected {header})")
    shape = tuple(int(d) for d in np.frombuffer(content, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[content[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(content) != expected:
        raise DataFileError(
            f"{name}: header says shape {shape} ({expected} bytes in all) but the file holds "
            f"{len(content)} bytes{' (truncated)' if len(content) < expected else ''}"
        )
    data = np.frombuffer(content, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path, sha256: str | None = None, shape=None) -> np.ndarray:
    """Read an idx file (gzip or not) into a NumPy array.

    Args:
        path: the file.
        sha256: when given, the sha256 that the decompressed content must have.
        shape: when given, the shape the array must have.
    Raises:
        DataFileError naming the file and what was expected and found.

    Example:
        >>> from minicnn.datasets import read_idx
        >>> labels = read_idx("../shared/data/mnist/t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
        >>> labels[:3]                                                             # doctest: +SKIP
        array([7, 2, 1], dtype=uint8)
    """
    path = os.fspath(path)
    content = read_bytes(path)
    if sha256 is not None:
        found = hashlib.sha256(content).hexdigest()
        if found != sha256:
            raise DataFileError(
                f"{path}: checksum mismatch: sha256 of the decompressed content is {found}, "
                f"expected {sha256} (a corrupt or different file)"
            )
    data = parse_idx(content, path)
    if shape is not None and data.shape != tuple(shape):
        raise DataFileError(f"{path}: expected an array of shape {tuple(shape)}, found {data.shape}")
    return data


def read_idx_dir(directory) -> dict[str, np.ndarray]:
    """Every idx file in ``directory`` (names containing ``-idx``), keyed by file name without ``.gz``."""
    directory = os.fspath(directory)
    try:
        names = sorted(os.listdir(directory))
    except OSError as err:
        raise DataFileError(f"{directory}: cannot list the directory ({err.strerror or err})") from err
    return {n.removesuffix(".gz"): read_idx(os.path.join(directory, n)) for n in names if "-idx" in n}
