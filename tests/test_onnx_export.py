"""ONNX export (opset 17): the graph passes ``onnx.checker`` and ONNX Runtime and ``onnx.reference`` compute what
minicnn computes.

Tolerance: outputs within 1e-5 absolute (float32 on both sides, the same weights, sums in another order: ~1e-7
expected); class predictions (argmax) identical. ONNX Runtime runs the full MNIST test set (10,000 images);
``onnx.reference`` (pure NumPy, ~40 ms an image here) runs the first 200.
Skips without onnx/onnxruntime unless MINICNN_REQUIRE_EXTRAS=1 (CI).
"""

import sys

import numpy as np
import pytest
from conftest import KERAS_MISSING, import_keras
from optional_modules import need
from test_model_files import mixed_data, trained_minicnn_mixed

import minicnn as mc
from minicnn import layers as L
from minicnn.onnx_export import OPSET, to_onnx

onnx = need("onnx", "onnx")
ort = need("onnxruntime", "onnx")
from onnx.reference import ReferenceEvaluator  # noqa: E402  (after the check that onnx is there)

TOLERANCE = 1e-5


def run_both(path, x, reference_rows=None):
    """(ONNX Runtime's outputs for ``x``, onnx.reference's for its first ``reference_rows``)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    theirs = session.run(["output"], {"input": x})[0]
    reference = ReferenceEvaluator(str(path)).run(None, {"input": x[:reference_rows]})[0]
    return theirs, reference


def check_outputs(ours, theirs, what):
    assert theirs.shape == ours.shape and theirs.dtype == np.float32
    worst = float(np.abs(theirs - ours).max())
    assert worst <= TOLERANCE, f"{what}: largest difference {worst:.3g} over {TOLERANCE}"
    assert np.array_equal(theirs.reshape(len(ours), -1).argmax(1), ours.reshape(len(ours), -1).argmax(1)), what


def test_every_layer_kind_matches_onnx_runtime_and_the_reference(tmp_path):
    model = trained_minicnn_mixed()  # BatchNormalization (4-D and 2-D), padding, pooling, Reshape, Dropout ...
    model.export(tmp_path / "mixed.onnx")
    proto = onnx.load(tmp_path / "mixed.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET
    assert "Dropout" not in {node.op_type for node in proto.graph.node}
    x, _ = mixed_data(64, seed=7)
    ours = model.predict(x)
    theirs, reference = run_both(tmp_path / "mixed.onnx", x)
    check_outputs(ours, theirs, "mixed model, ONNX Runtime")
    check_outputs(ours, reference, "mixed model, onnx.reference")


def test_four_d_outputs_and_softmax_over_channels(tmp_path):
    """A softmax over the channels of an image (axis 1 in ONNX's NCHW), asymmetric 'same' pooling pads, and an
    output that stays 4-D (transposed back to NHWC)."""
    model = mc.Sequential(
        [
            L.Conv2D(3, 3, padding="same", input_shape=(9, 7, 2)),
            L.Activation("softmax"),
            L.MaxPooling2D(3, strides=2, padding="same"),
            L.Conv2D(4, (2, 3), strides=(2, 1)),
            L.GlobalMaxPooling2D(keepdims=True),
        ],
        seed=4,
    )
    model.export(tmp_path / "four_d.onnx")
    x = np.random.default_rng(1).normal(size=(16, 9, 7, 2)).astype(np.float32)
    ours = model.predict(x)
    assert ours.shape == (16, 1, 1, 4)
    theirs, reference = run_both(tmp_path / "four_d.onnx", x)
    check_outputs(ours, theirs, "4-D output, ONNX Runtime")
    check_outputs(ours, reference, "4-D output, onnx.reference")


def _mnist_test_set():
    from test_datasets import _real_mnist_dir

    from minicnn.datasets import mnist
    from minicnn.train import prepare

    (x_train, y_train), (x_test, y_test) = mnist.load_data(_real_mnist_dir())
    return prepare(x_train[:512], y_train[:512]), prepare(x_test, y_test)


def test_tutorial_model_on_the_mnist_test_set(tmp_path):
    (x, y), (x_test, _) = _mnist_test_set()
    model = mc.recipes.build_model("tutorial", seed=0, backend="numpy")
    for start in range(0, 512, 128):  # a few steps: weights away from their initial draw
        model.train_on_batch(x[start : start + 128], y[start : start + 128])
    model.export(tmp_path / "tutorial.onnx")
    ours = model.predict(x_test, batch_size=500)
    theirs, reference = run_both(tmp_path / "tutorial.onnx", x_test, reference_rows=200)
    check_outputs(ours, theirs, "tutorial model on 10,000 test images, ONNX Runtime")
    check_outputs(ours[:200], reference, "tutorial model on 200 test images, onnx.reference")


keras, _ = import_keras()


@pytest.mark.skipif(keras is None, reason=KERAS_MISSING)
def test_a_model_trained_by_the_command_opens_in_keras_and_onnx_runtime(tmp_path):
    """The acceptance: python -m minicnn.train, then python -m minicnn.export to .onnx and .keras; ONNX Runtime and
    Keras give the test-set predictions minicnn gives."""
    import subprocess

    from test_datasets import _real_mnist_dir

    from minicnn import export

    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "minicnn.train",
            "--limit",
            "512",
            "--epochs",
            "1",
            "--backend",
            "numpy",
            "--data-dir",
            _real_mnist_dir(),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**__import__("os").environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("model.onnx", "model.keras"):
        assert export.main(["--weights", str(out / "weights.npz"), "--out", str(out / name)]) == 0
    _, (x_test, _) = _mnist_test_set()
    ours = mc.recipes.build_model("tutorial", backend="numpy")
    ours.load_weights(out / "weights.npz")
    p_ours = ours.predict(x_test, batch_size=500)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    check_outputs(p_ours, session.run(["output"], {"input": x_test})[0], "trained model, ONNX Runtime")
    p_keras = keras.models.load_model(out / "model.keras").predict(x_test, batch_size=500, verbose=0)
    check_outputs(p_ours, p_keras, "trained model, Keras")


def test_the_command_converts_a_keras_file(tmp_path, capsys):
    from minicnn import export

    model = trained_minicnn_mixed()
    model.save(tmp_path / "m.keras")
    assert export.main(["--model", str(tmp_path / "m.keras"), "--out", str(tmp_path / "m.onnx")]) == 0
    assert f"wrote {tmp_path / 'm.onnx'} ({model.count_params():,} weights, 16 layers)" in capsys.readouterr().out
    x, _ = mixed_data(8, seed=9)
    check_outputs(model.predict(x), run_both(tmp_path / "m.onnx", x)[0], "converted .keras file, ONNX Runtime")


def test_errors(tmp_path, monkeypatch, capsys):
    from minicnn import export

    with pytest.raises(ValueError, match="not built"):
        to_onnx(mc.Sequential([L.Dense(2)]))
    model = mc.Sequential([L.Dense(2, input_shape=(3,))], seed=0)
    with pytest.raises(ValueError, match="format 'tf_saved_model' is not supported"):
        model.export(tmp_path / "m", format="tf_saved_model")
    with pytest.raises(ValueError, match="opset 16 is too old"):
        model.export(tmp_path / "m.onnx", opset=16)
    assert export.main(["--weights", "w.npz", "--out", str(tmp_path / "m.txt")]) == 2
    assert "must end in .onnx or .keras" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"minicnn\[onnx\]"):
        model.export(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
