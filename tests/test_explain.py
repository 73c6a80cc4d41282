"""Tools for studying backprop: the trace, hooks, pictures, python -m minicnn.explain, and the guide's snippets."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import synthetic_digits

import minicnn as mc
from minicnn.plotting import plot_feature_maps, plot_filters, plot_gradient_norms, plot_saliency
from minicnn.train import tutorial_model
from minicnn.training import GradientNormRecorder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_trace_counts_and_shapes_for_the_tutorial_model():
    model = tutorial_model(seed=0, backend="numpy")
    x, y = synthetic_digits(16)
    trace = model.trace(x, y)
    macs = {r["layer"]: r["multiply_adds_per_image"] for r in trace.forward}
    assert (macs["conv2d"], macs["conv2d_1"], macs["dense"], macs["dense_1"], macs["dense_2"]) == (
        460_800,
        3_276_800,
        122_880,
        10_080,
        840,
    )
    assert macs["max_pooling2d"] == macs["dropout"] == 0
    shapes = [(r["input_shape"], r["output_shape"]) for r in trace.forward]
    assert shapes[0] == ((16, 28, 28, 1), (16, 24, 24, 32)) and shapes[-1] == ((16, 84), (16, 10))
    assert [r["layer"] for r in trace.backward] == [layer.name for layer in reversed(model.layers)]
    back = {r["layer"]: r["multiply_adds_per_image"] for r in trace.backward}
    assert (back["conv2d"], back["conv2d_1"], back["dense"]) == (460_800, 2 * 3_276_800, 2 * 122_880)
    assert trace.backward[-1]["grad_input_shape"] is None  # the images' gradient is not needed
    assert trace.backward[0]["formula"].startswith("dZ = (P - Y) / N")
    assert "(16*576, 25) @ (25, 32)" in str(trace)
    assert [p["name"] for p in trace.params][:2] == ["conv2d/kernel", "conv2d/bias"]
    assert trace.params[0]["update_ratio"] > 0
    json.loads(trace.to_json())


def test_trace_gradients_are_the_ones_compute_gradients_gives():
    model = tutorial_model(seed=3, backend="numpy", dtype="float64")
    for layer in model.layers:
        if hasattr(layer, "rate"):
            layer.rate = 0.0
    x, y = synthetic_digits(8)
    loss, grads = model.compute_gradients(x, y)
    trace = model.trace(x, y, update=False)
    assert trace.loss == pytest.approx(loss, rel=1e-12)
    for record, g in zip(trace.params, grads):
        assert record["grad_norm"] == pytest.approx(float(np.linalg.norm(g)), rel=1e-12)


def test_hooks_see_what_the_layers_compute_and_can_be_removed():
    model = tutorial_model(seed=1, backend="numpy")
    x, y = synthetic_digits(4)
    fwd, bwd = [], []
    conv = model.layers[2]
    h1 = conv.register_forward_hook(lambda layer, inp, out: fwd.append((inp.copy(), out.copy())))
    h2 = conv.register_backward_hook(lambda layer, gin, gout: bwd.append((gin.copy(), gout.copy())))
    model.compute_gradients(x, y)
    ((inp, out),) = fwd
    ((gin, gout),) = bwd
    # the hook's output is what the layer computes from the hook's input
    probe = mc.layers.Conv2D(64, (5, 5), activation="relu")
    probe.build(inp.shape[1:], model.backend, np.float32, np.random.default_rng(0))
    for key in ("kernel", "bias"):
        probe.params[key][...] = conv.params[key]
    np.testing.assert_allclose(probe.forward(inp), out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probe.backward(gout.copy()), gin, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probe.grads["kernel"], conv.grads["kernel"], rtol=1e-5, atol=1e-7)
    h1.remove()
    h2.remove()
    model.compute_gradients(x, y)
    assert len(fwd) == len(bwd) == 1


def test_gradient_norm_recorder_records_every_parameter():
    model = tutorial_model(seed=2, backend="numpy")
    x, y = synthetic_digits(64)
    recorder = GradientNormRecorder(every=2)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[recorder])
    assert recorder.steps == [0, 2, 4, 6]
    assert set(recorder.norms) == {f"{layer.name}/{k}" for layer in model.layers for k in layer.params}
    assert all(len(v) == 4 and all(n > 0 for n in v) for v in recorder.norms.values())


def _png_ok(path):
    from matplotlib.image import imread

    return imread(path).shape[0] > 100


def test_pictures_are_written_and_decode(tmp_path):
    model = tutorial_model(seed=0, backend="numpy")
    x, y = synthetic_digits(64)
    recorder = GradientNormRecorder()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[recorder])
    assert _png_ok(plot_filters(model, tmp_path / "f.png"))
    assert _png_ok(plot_feature_maps(model, x[0], tmp_path / "m.png"))
    assert _png_ok(plot_saliency(model, x[0], int(y[0].argmax()), tmp_path / "s.png"))
    assert _png_ok(plot_gradient_norms(recorder, tmp_path / "g.png"))


def test_saliency_is_the_gradient_of_the_class_logit():
    from minicnn.trace import saliency

    model = tutorial_model(seed=0, backend="numpy", dtype="float64")
    image = synthetic_digits(1)[0][0].astype(np.float64)
    grad = saliency(model, image, 3)

    def logit(img):
        z = model.prepare_inputs(img[None])
        for layer in model.layers[:-1]:
            z = layer.forward(z)
        last = model.layers[-1]
        return float((z @ last.params["kernel"] + last.params["bias"])[0, 3])

    h, i, j = 1e-6, 14, 13
    bumped_up, bumped_down = image.copy(), image.copy()
    bumped_up[i, j, 0] += h
    bumped_down[i, j, 0] -= h
    assert grad[i, j, 0] == pytest.approx((logit(bumped_up) - logit(bumped_down)) / (2 * h), rel=1e-5, abs=1e-9)


def test_explain_command_writes_its_files(tmp_path):
    from test_datasets import _real_mnist_dir

    out = tmp_path / "ex"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "minicnn.explain",
            "--data-dir",
            _real_mnist_dir(),
            "--steps",
            "8",
            "--batch",
            "16",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "training 8 steps of 128 first" in proc.stdout
    for name in ("filters.png", "feature_maps.png", "saliency.png", "gradient_norms.png"):
        assert _png_ok(out / name)
    assert "FORWARD" in (out / "trace.txt").read_text()
    assert json.loads((out / "trace.json").read_text())["batch_size"] == 16


def test_the_trace_shows_batch_normalization_statistics():
    from minicnn.recipes import build_model

    model = build_model("fashion_bn", seed=0, backend="numpy")
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 28, 28, 1), dtype=np.float32), np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    trace = model.trace(x, y)
    records = [r for r in trace.forward if r["type"] == "BatchNormalization"]
    assert len(records) == 5 and all(r["batch_statistics"]["channels"] in (32, 64, 128) for r in records)
    first = records[0]["batch_statistics"]
    assert first["var_min"] <= first["var_max"] and "batch statistics of its 32 channels" in str(trace)
    assert all(r["batch_statistics"] is None for r in trace.forward if r["type"] != "BatchNormalization")
