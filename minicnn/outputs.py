"""The command's results on disk: the output folder checked before training, and the results written so that the
valuable ones come first (``weights.npz``, ``metrics.json``) and a plot that fails loses neither."""

from __future__ import annotations

import json
import os

from .utils import atomic_write, check_writable_folder

RESULTS = ("weights.npz", "metrics.json")


def check_output_folder(out, names) -> None:
    """An OSError naming the problem unless ``out`` can receive the files ``names``: a writable folder (or one
    that can be created; it is not created here), where none of those names is taken by a folder."""
    check_writable_folder(out, "output folder")
    for name in names:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            raise OSError(
                f"{path} is a folder: the run writes a file of that name there; move it or choose another --out"
            )


def write_results(out, model, metrics: dict, plots) -> list[str]:
    """Write ``weights.npz`` and ``metrics.json`` into ``out``, then each plot (``plots``: ``(file name, function of
    the path)`` pairs). Every file that can be written is; then an OSError names those that could not (the plots
    after the results, so a plot that fails loses nothing else). Returns the names written."""
    written, failed = [], []
    jobs = [
        ("weights.npz", model.save_weights),
        ("metrics.json", lambda path: atomic_write(path, lambda fh: json.dump(metrics, fh, indent=2), mode="w")),
        *plots,
    ]
    for name, write in jobs:
        try:
            write(os.path.join(out, name))
            written.append(name)
        except (OSError, ValueError, RuntimeError) as err:
            failed.append(f"{name} ({err})")
            if name in RESULTS:
                break  # the results first: no plot is worth drawing without them
    if failed:
        kept = f"; written: {', '.join(written)}" if written else ""
        raise OSError(f"could not write {'; '.join(failed)} in {out}{kept}")
    return written
