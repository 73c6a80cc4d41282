"""Optional packages for the tests of the extras (h5py: keras-files; onnx, onnxruntime: onnx)."""

import importlib
import os

import pytest


def need(module: str, extra: str):
    """``module``, imported; when it is absent the test skips with the extra to install, except under
    MINICNN_REQUIRE_EXTRAS=1 (set by .ci/run), where its absence is an error: CI must run these tests."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("MINICNN_REQUIRE_EXTRAS") == "1":
            raise
        pytest.skip(f"{module} not installed; pip install '.[{extra}]'", allow_module_level=True)
