"""What ``pip install`` puts on a user's machine: the wheel built from this tree holds the minicnn package only (no
top-level benchmarks or tests), its py.typed marker, the guides, the LICENSE, and the two console scripts."""

import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    try:
        import setuptools

        isolated = int(setuptools.__version__.split(".")[0]) < 77  # else build with the one installed (offline)
    except ImportError:
        isolated = True
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), ROOT]
        + ([] if isolated else ["--no-build-isolation"]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = [p for p in os.listdir(out) if p.endswith(".whl")]
    with zipfile.ZipFile(out / path) as archive:
        return {
            name: archive.read(name)
            for name in archive.namelist()
            if not name.endswith((".py", ".pyc")) or name.count("/") <= 1
        }


def test_the_wheel_installs_minicnn_alone(wheel):
    top = {name.split("/")[0] for name in wheel}
    assert top == {"minicnn", "minicnn-0.1.0.dist-info"}, top  # benchmarks/ and tests/ run from the project


def test_the_wheel_has_py_typed_the_guides_and_the_license(wheel):
    assert "minicnn/py.typed" in wheel
    assert {"minicnn/docs/backprop.md", "minicnn/docs/extending.md", "minicnn/docs/performance.md"} <= set(wheel)
    assert wheel["minicnn/docs/backprop.md"] == open(os.path.join(ROOT, "docs", "backprop.md"), "rb").read()
    license_text = wheel["minicnn-0.1.0.dist-info/licenses/LICENSE"].decode()
    assert license_text.startswith("MIT License") and "Copyright (c) 2026 the minicnn authors" in license_text
    metadata = wheel["minicnn-0.1.0.dist-info/METADATA"].decode()
    assert "License-Expression: MIT" in metadata and "Classifier: Typing :: Typed" in metadata


def test_the_wheel_declares_the_console_scripts(wheel):
    entry_points = wheel["minicnn-0.1.0.dist-info/entry_points.txt"].decode()
    assert "minicnn-train = minicnn.train:main" in entry_points
    assert "minicnn-explain = minicnn.explain:main" in entry_points
    assert "minicnn-export = minicnn.export:main" in entry_points


def test_the_guides_command_lists_and_prints_the_guides(capsys):
    from minicnn import guides

    assert guides.main([]) == 0
    listing = capsys.readouterr().out
    assert {line.split()[0] for line in listing.splitlines()} >= {"backprop", "extending", "performance"}
    assert guides.main(["backprop"]) == 0
    assert capsys.readouterr().out == open(os.path.join(ROOT, "docs", "backprop.md")).read()


def test_usage_names_the_console_script_when_run_as_one(monkeypatch):
    from minicnn import cli

    monkeypatch.setattr(sys, "argv", ["/venv/bin/minicnn-train"])
    assert cli.prog("minicnn.train", "minicnn-train") == "minicnn-train"
    monkeypatch.setattr(sys, "argv", ["/x/minicnn/train.py"])
    assert cli.prog("minicnn.train", "minicnn-train") == "python -m minicnn.train"


def test_the_public_api_has_type_hints_that_resolve():
    import typing

    import minicnn as mc
    from minicnn import annotations, callbacks, layers

    names = {**vars(annotations), **vars(mc), "History": callbacks.History, "Layer": layers.Layer}
    public = [
        mc.Sequential.__init__,
        mc.Sequential.compile,
        mc.Sequential.fit,
        mc.Sequential.evaluate,
        mc.Sequential.predict,
        mc.Sequential.save_weights,
        mc.Sequential.load_weights,
        mc.Sequential.get_layer,
        mc.Sequential.train_on_batch,
        mc.Sequential.predict_on_batch,
    ]
    public += [
        getattr(layers, name).__init__
        for name in (
            "Conv2D",
            "Dense",
            "MaxPooling2D",
            "Dropout",
            "Flatten",
            "BatchNormalization",
            "Activation",
            "Reshape",
        )
    ]
    for fn in public:
        hints = typing.get_type_hints(fn, localns=names)  # a name that does not exist raises here
        assert "return" in hints or fn.__name__ == "__init__", fn.__qualname__
        assert len(hints) >= 2, (fn.__qualname__, hints)
