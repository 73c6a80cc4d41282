"""Exercises that grade themselves: write a backward pass, and minicnn says what is wrong and where.

    python -m minicnn.exercises                        # the list
    python -m minicnn.exercises start dense_backward   # writes dense_backward.py from a template
    python -m minicnn.exercises check dense_backward   # runs your function against minicnn and a numerical gradient

In Python: ``check(name, path)`` returns a :class:`~minicnn.exercises.core.CheckResult` (``.passed``, ``.lines``).
"""

from __future__ import annotations

import os

from . import (
    avgpool_backward,
    col2im,
    conv2d_weight_gradient,
    dense_backward,
    maxpool_backward,
    softmax_crossentropy_backward,
)
from .core import CheckResult, load_function, run_checks

# in the order a learner meets them: the last layer first, then the layers below it
EXERCISES = {
    ex.NAME: ex
    for ex in (
        softmax_crossentropy_backward,
        dense_backward,
        maxpool_backward,
        avgpool_backward,
        col2im,
        conv2d_weight_gradient,
    )
}


def get_exercise(name: str):
    """The exercise module called ``name``; a ValueError listing the names otherwise."""
    if name not in EXERCISES:
        raise ValueError(f"no exercise named {name!r}; choose one of: {', '.join(EXERCISES)}")
    return EXERCISES[name]


def default_path(name: str, folder: str = ".") -> str:
    return os.path.join(folder, f"{name}.py")


def start(name: str, folder: str = ".", force: bool = False) -> str:
    """Write ``<folder>/<name>.py`` from the exercise's template and return its path; a FileExistsError when the
    file is there already (your work is not overwritten unless ``force``)."""
    ex = get_exercise(name)
    path = default_path(name, folder)
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists already: edit it, or pass --force to start again from the template")
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as fh:
        fh.write(ex.TEMPLATE)
    return path


def check(name: str, path=None) -> CheckResult:
    """Check the learner's function of exercise ``name`` in ``path`` (default ``./<name>.py``)."""
    ex = get_exercise(name)
    path = default_path(name) if path is None else path
    result = run_checks(ex, load_function(path, ex.FUNCTION, name))
    result.lines.insert(0, f"{os.fspath(path)}:")
    return result


__all__ = ["EXERCISES", "CheckResult", "check", "default_path", "get_exercise", "start"]
