"""The ``.keras`` archive, read as data: a zip of config.json, metadata.json and model.weights.h5, opened in memory.

Reading never extracts anything to disk and never runs anything from the file. Before a member is used the
archive is checked, and any of these is one :class:`ModelFileError` naming the file and the problem:

- the file itself larger than ``limits.file_bytes``; not a zip; an encrypted member, an unknown compression, two
  members of the same name, a member other than the three above, more than ``limits.members`` members;
- a member whose DECLARED size is over its limit (``limits.json_bytes`` for the JSON files,
  ``limits.weights_bytes`` for the weights), or whose ACTUAL size, read with a cap one byte past that limit,
  differs from the declared one (a zip bomb, or a lying header), or whose CRC does not match;
- JSON that is not UTF-8, not an object, nested too deep, holds NaN/Infinity or repeats a key.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"


class ModelFileError(ValueError):
    """A model file minicnn refuses to read; the message names the file and the problem."""


@dataclass(frozen=True)
class Limits:
    """The largest model file minicnn reads (bytes, members); raise them for a bigger model."""

    file_bytes: int = 1 << 30  # the whole archive: 1 GiB
    weights_bytes: int = 1 << 30  # model.weights.h5 uncompressed
    json_bytes: int = 16 << 20  # config.json, metadata.json uncompressed: 16 MiB each
    members: int = 8


@dataclass
class KerasArchive:
    """The checked members of a ``.keras`` file: the parsed config and metadata, the weights' bytes."""

    config: dict
    metadata: dict
    weights: bytes


def _refuse(source, problem):
    raise ModelFileError(f"{source}: {problem}")


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"the key {next(k for k in keys if keys.count(k) > 1)!r} appears twice")
    return dict(pairs)


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data: bytes | str, source, member: str) -> dict:
    """A JSON object from ``data``; anything else (bad UTF-8, NaN, a repeated key, deep nesting) is refused."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        _refuse(source, f"{member} is not valid JSON ({type(err).__name__}: {str(err)[:200]})")
    if not isinstance(value, dict):
        _refuse(source, f"{member} holds a {type(value).__name__}, not a JSON object")
    return value


def _read_member(zf, info, limit, source) -> bytes:
    if info.file_size > limit:
        _refuse(source, f"{info.filename} declares {info.file_size:,} bytes, over the limit of {limit:,}")
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)  # never more than one byte past the limit, whatever the header says
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as err:
        _refuse(source, f"{info.filename} cannot be read ({err})")
    if len(data) != info.file_size:
        _refuse(
            source,
            f"{info.filename} holds {'over ' if len(data) > limit else ''}{len(data):,} bytes where its "
            f"header declares {info.file_size:,} (a damaged or forged archive)",
        )
    return data


def read_archive(path, limits: Limits | None = None) -> KerasArchive:
    """Read and check the ``.keras`` file at ``path`` in memory (see the module's docstring for the checks)."""
    limits = limits or Limits()
    source = os.fspath(path)
    try:
        size = os.path.getsize(source)
        if size > limits.file_bytes:
            _refuse(source, f"the file holds {size:,} bytes, over the limit of {limits.file_bytes:,}")
        with open(source, "rb") as fh:
            raw = fh.read(limits.file_bytes + 1)
    except OSError as err:
        raise ModelFileError(f"{source}: cannot read the file ({err.strerror or err})") from None
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as err:
        raise ModelFileError(f"{source}: not a .keras file (not a readable zip archive: {err})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.members:
            _refuse(source, f"the archive holds {len(infos)} members, over the limit of {limits.members}")
        names = [info.filename for info in infos]
        for info in infos:
            if names.count(info.filename) > 1:
                _refuse(source, f"the archive holds two members named {info.filename!r}")
            if info.filename not in (CONFIG, METADATA, WEIGHTS):
                _refuse(
                    source,
                    f"unexpected member {info.filename[:100]!r} (minicnn reads {CONFIG}, {METADATA} and "
                    f"{WEIGHTS} only)",
                )
            if info.flag_bits & 0x1:
                _refuse(source, f"{info.filename} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                _refuse(
                    source,
                    f"{info.filename} uses compression method {info.compress_type} (minicnn reads "
                    f"stored or deflated members)",
                )
        for required in (CONFIG, WEIGHTS):
            if required not in names:
                _refuse(source, f"no {required} in the archive (a .keras file holds {CONFIG} and {WEIGHTS})")
        found = {info.filename: info for info in infos}
        config = parse_json(_read_member(zf, found[CONFIG], limits.json_bytes, source), source, CONFIG)
        metadata = {}
        if METADATA in found:
            metadata = parse_json(_read_member(zf, found[METADATA], limits.json_bytes, source), source, METADATA)
        weights = _read_member(zf, found[WEIGHTS], limits.weights_bytes, source)
    return KerasArchive(config, metadata, weights)


def write_archive(fh, config: dict, metadata: dict, weights: bytes) -> None:
    """Write the three members into the open binary file ``fh``, stored uncompressed, in Keras's order."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(METADATA, json.dumps(metadata))
        zf.writestr(CONFIG, json.dumps(config))
        zf.writestr(WEIGHTS, weights)
