"""The README's Python examples run as pasted (the tutorial one on a slice of MNIST, for time)."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_blocks():
    with open(os.path.join(ROOT, "README.md")) as fh:
        return re.findall(r"```python\n(.*?)```", fh.read(), flags=re.S)


def test_every_python_block_is_covered_here():
    assert len(readme_blocks()) == 5  # model in Python, tutorial, Keras weights, gradient check, model files


def test_model_example_runs():
    block = next(b for b in readme_blocks() if "model.summary()" in b and "train_on_batch" in b)
    exec(compile(block, "README.md", "exec"), {})


def test_gradient_check_example_runs():
    block = next(b for b in readme_blocks() if "check_layer" in b)
    exec(compile(block, "README.md", "exec"), {})


def test_tutorial_example_runs_on_a_slice(tmp_path, monkeypatch):
    from test_datasets import _real_mnist_dir

    monkeypatch.setenv("MINICNN_DATA", os.path.abspath(_real_mnist_dir()))
    monkeypatch.chdir(tmp_path)
    block = next(b for b in readme_blocks() if "plot_history" in b)
    # the example as written trains 10 epochs on 60,000 images; here: 1 epoch on the first 2,560, same code path
    shortened = block.replace("epochs=10", "epochs=1").replace(
        "(x_train, y_train), (x_test, y_test) = mnist.load_data()",
        "(x_train, y_train), (x_test, y_test) = mnist.load_data()\nx_train, y_train = x_train[:2560], y_train[:2560]",
    )
    assert shortened != block
    exec(compile(shortened, "README.md", "exec"), {})
    assert (tmp_path / "history.png").exists() and (tmp_path / "misclassified.png").exists()


def test_keras_example_names_real_functions():
    pytest.importorskip("h5py")
    block = next(b for b in readme_blocks() if "load_keras_weights" in b)
    from minicnn.keras_compat import load_keras_weights  # noqa: F401  (the example's import works)

    assert "from minicnn.keras_compat import load_keras_weights" in block


def test_model_files_example_runs(tmp_path, monkeypatch, capsys):
    from optional_modules import need

    need("h5py", "keras-files")
    need("onnx", "onnx")
    monkeypatch.chdir(tmp_path)
    block = next(b for b in readme_blocks() if "model.save(" in b)
    exec(compile(block, "README.md", "exec"), {})
    assert capsys.readouterr().out.split() == ["13610"]
    assert (tmp_path / "digits.keras").exists() and (tmp_path / "digits.onnx").exists()
