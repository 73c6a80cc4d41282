"""The step as a graph (labels computed from the model's shapes, a picture that is not blank) and the interactive
page: one self-contained file that a real headless browser (Debian's chromium) loads without console errors, steps
through with keys and buttons, and draws (a screenshot that is not blank)."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import synthetic_digits

from minicnn.graph import graph_layout
from minicnn.page import write_page
from minicnn.trace import trace_step
from minicnn.train import tutorial_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _shape(s):
    return "(N, " + ", ".join(str(d) for d in s) + ")"


def test_the_graph_labels_are_the_models_shapes():
    model = tutorial_model(seed=0, backend="numpy")
    x, y = synthetic_digits(8)
    layout = graph_layout(trace_step(model, x, y, repeats=0))
    assert [n["name"] for n in layout["nodes"]] == ["input"] + [layer.name for layer in model.layers] + ["loss"]
    forward = [e["label"] for e in layout["edges"] if e["kind"] == "forward"]
    assert forward == (
        ["X " + _shape(model.input_shape)]
        + [_shape(layer.output_shape) for layer in model.layers[:-1]]
        + ["P " + _shape(model.output_shape)]
    )
    backward = [e for e in layout["edges"] if e["kind"] == "backward"]
    assert (backward[0]["src"], backward[0]["dst"], backward[0]["label"]) == ("loss", "dense_2", "dZ (N, 10)")
    assert [e["label"] for e in backward[1:]] == (
        ["dX " + _shape(layer.input_shape) for layer in reversed(model.layers[1:])] + ["dX not computed"]
    )
    params = {p["layer"]: p["label"] for p in layout["params"]}
    assert set(params) == {layer.name for layer in model.layers if layer.params}
    for layer in model.layers:
        if layer.params:
            kernel, bias = layer.params["kernel"].shape, layer.params["bias"].shape
            assert f"kernel {kernel}   dW {kernel}" in params[layer.name]
            assert f"bias   {bias}   db {bias}" in params[layer.name]


def _not_blank(path, min_std=0.05):
    from matplotlib.image import imread

    pixels = imread(path)[..., :3]
    return pixels.shape[0] > 300 and float(pixels.std()) > min_std


def test_plot_graph_writes_a_picture_that_is_not_blank(tmp_path):
    model = tutorial_model(seed=0, backend="numpy")
    x, y = synthetic_digits(8)
    path = model.trace(x, y).plot_graph(tmp_path / "graph.png")
    assert _not_blank(path)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    model = tutorial_model(seed=0, backend="numpy")
    x, y = synthetic_digits(4)
    path = tmp_path_factory.mktemp("page") / "index.html"
    write_page(model, x, y, path)
    return path, model


def test_the_page_is_one_file_that_fetches_nothing(page):
    path, model = page
    text = path.read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"'](?!data:)", text)  # every picture inline, no link, no script src
    assert "http://" not in text and "https://" not in text and "<link" not in text
    sources = re.findall(r'<img[^>]*src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    slides = re.findall(r'<section class="slide" id="s\d+"><h2><span class="stage (\w+)">', text)
    layers = len(model.layers)
    assert slides == ["overview"] + ["forward"] * layers + ["loss"] + ["backward"] * layers + ["update"]
    assert "Y = relu(im2col(X) @ W + b)" in text and "dL/dZ = (P - Y) / N" in text


def _chromium(args, tmp_path, timeout=120):
    # --no-sandbox: CI runs as root; --disable-dev-shm-usage: containers' small /dev/shm
    cmd = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (CI installs Debian's)")


@needs_chromium
def test_the_page_steps_through_every_slide_in_a_browser_without_errors(page, tmp_path):
    path, model = page
    run = _chromium(["--dump-dom", f"file://{path}#selftest"], tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    result = re.search(r'<pre id="selftest">([^<]*)</pre><pre id="errors">([^<]*)</pre>', run.stdout)
    assert result, run.stdout[-2000:]
    slides = 2 * len(model.layers) + 3
    assert result.group(1).startswith(f"selftest: PASS {slides} slides"), result.group(1)
    assert result.group(2) == ""
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # the page logs nothing when all is well


@needs_chromium
def test_a_screenshot_of_the_page_is_not_blank_and_changes_with_the_slide(page, tmp_path):
    from matplotlib.image import imread

    path, _ = page
    shots = []
    for k in (1, 2):
        shot = tmp_path / f"slide{k}.png"
        run = _chromium(
            ["--hide-scrollbars", "--window-size=1280,900", f"--screenshot={shot}", f"file://{path}#slide-{k}"],
            tmp_path,
        )
        assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
        assert _not_blank(shot)
        shots.append(imread(shot)[..., :3])
    assert shots[0].shape == shots[1].shape and np.abs(shots[0] - shots[1]).mean() > 0.01


def test_explain_html_writes_the_page_and_the_graph(tmp_path):
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
            "2",
            "--batch",
            "4",
            "--html",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _not_blank(out / "graph.png")
    text = (out / "index.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count('<section class="slide"') == 23
    assert "index.html" in proc.stdout and "graph.png" in proc.stdout
