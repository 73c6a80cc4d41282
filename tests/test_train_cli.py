"""`python -m minicnn.train` end to end on the real MNIST files (short run), and its error handling."""

import json
import os
import subprocess
import sys

import pytest
from test_datasets import _real_mnist_dir


def _run(args, env_extra=None, timeout=600):
    env = {**os.environ, "MPLBACKEND": "Agg", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "minicnn.train", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_short_run_reaches_90_percent_and_writes_every_output(tmp_path):
    data = _real_mnist_dir()
    out = tmp_path / "run"
    proc = _run(["--epochs", "1", "--limit", "12000", "--quiet", "--data-dir", data, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Total params: 186,110" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.90, metrics["test_accuracy"]
    assert metrics["params"] == {"verbose": 2, "epochs": 1, "steps": 75}  # 9,600 images / 128
    assert set(metrics["history"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert 0 < metrics["misclassified"] == round((1 - metrics["test_accuracy"]) * 10000)
    assert metrics["backend"] and metrics["seed"] == 42 and "numpy" in metrics["versions"]
    from matplotlib.image import imread

    for png in ("history.png", "misclassified.png"):
        assert imread(out / png).shape[0] > 100
    import numpy as np

    with np.load(out / "weights.npz") as w:
        assert w["conv2d/kernel"].shape == (5, 5, 1, 32)
    assert sorted(p.name for p in out.iterdir()) == ["history.png", "metrics.json", "misclassified.png", "weights.npz"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--batch-size", "0"], "--batch-size: expected a positive integer, got 0"),
        (["--validation-split", "1.5"], r"--validation-split: expected a number in \[0, 1\)"),
        (["--backend", "tpu"], "invalid choice: 'tpu'"),
    ],
)
def test_bad_options_exit_2_with_one_line(args, message):
    import re

    proc = _run(args)
    assert proc.returncode == 2
    assert re.search(message, proc.stderr) and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_missing_data_exits_2_and_names_the_files(tmp_path):
    proc = _run(
        ["--data-dir", str(tmp_path), "--out", str(tmp_path / "o")],
        env_extra={"MINICNN_DATA": str(tmp_path / "none"), "HOME": str(tmp_path / "home"), "MINICNN_OFFLINE": "1"},
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: mnist: the files train-images-idx3-ubyte.gz")
    assert "Traceback" not in proc.stderr


def test_cli_resume_after_one_epoch_ends_with_the_same_weights(tmp_path):
    import numpy as np

    data = _real_mnist_dir()
    common = ["--limit", "1280", "--batch-size", "64", "--quiet", "--data-dir", data, "--seed", "3"]
    straight = _run(common + ["--epochs", "2", "--out", str(tmp_path / "a")])
    assert straight.returncode == 0, straight.stderr[-2000:]
    first = _run(common + ["--epochs", "1", "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(tmp_path / "b")])
    assert first.returncode == 0, first.stderr[-2000:]
    resumed = _run(
        common + ["--epochs", "2", "--checkpoint-dir", str(tmp_path / "ck"), "--resume", "--out", str(tmp_path / "c")]
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with np.load(tmp_path / "a" / "weights.npz") as a, np.load(tmp_path / "c" / "weights.npz") as c:
        assert sorted(a.files) == sorted(c.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], c[key])
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 2


def test_cli_resume_without_checkpoint_is_one_line(tmp_path):
    proc = _run(
        [
            "--resume",
            "--checkpoint-dir",
            str(tmp_path / "none"),
            "--data-dir",
            _real_mnist_dir(),
            "--limit",
            "128",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: no checkpoint to resume from" in proc.stderr


def test_cupy_backend_without_cupy_is_one_line_saying_what_to_install(tmp_path):
    from importlib.util import find_spec

    if find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here: the missing-CuPy message cannot be shown")
    proc = _run(["--backend", "cupy", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: the 'cupy' backend needs CuPy")
    assert "pip install 'minicnn[gpu]'" in proc.stderr


def test_fashion_mnist_runs_from_its_folder(tmp_path):
    # the real files (their checksums are checked): the whole --dataset fashion_mnist path, class names included
    from test_fashion_mnist import fashion_dir

    out = tmp_path / "run"
    proc = _run(
        [
            "--dataset",
            "fashion_mnist",
            "--data-dir",
            fashion_dir(),
            "--epochs",
            "1",
            "--limit",
            "2048",
            "--quiet",
            "--out",
            str(out),
        ],
        env_extra={"MINICNN_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "fashion_mnist" and metrics["recipe"] == "tutorial"
    assert metrics["test_accuracy"] > 0.2 and metrics["tutorial"] is None  # 10 classes: chance is 0.1 (0.31 seen)
    assert "R keras tutorial" not in proc.stdout and "0.993" not in proc.stdout  # MNIST's figures: not beside these
    assert metrics["reference"] is None  # no reference run of the tutorial's model on Fashion-MNIST


def test_fashion_bn_recipe_trains_from_the_command_line(tmp_path):
    from test_fashion_mnist import fashion_dir

    out = tmp_path / "run"
    proc = _run(
        [
            "--recipe",
            "fashion_bn",
            "--data-dir",
            fashion_dir(),
            "--epochs",
            "1",
            "--limit",
            "1024",
            "--quiet",
            "--out",
            str(out),
        ],
        env_extra={"MINICNN_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Non-trainable params: 640" in proc.stdout  # the moving statistics of five BatchNormalizations
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["recipe"], metrics["optimizer"], metrics["dataset"]) == ("fashion_bn", "Adam", "fashion_mnist")
    assert metrics["learning_rate"] == 0.001 and metrics["test_accuracy"] > 0.3  # chance is 0.1
    assert (
        "(Keras 3.15.1 on this recipe, 15 epochs; docs/performance.md: test loss 0.2022, test accuracy 0.9296)"
        in proc.stdout
        and "0.993" not in proc.stdout
    )


def test_optimizer_and_learning_rate_flags_choose_the_optimizer(tmp_path):
    out = tmp_path / "run"
    proc = _run(
        [
            "--optimizer",
            "rmsprop",
            "--learning-rate",
            "0.0005",
            "--epochs",
            "1",
            "--limit",
            "256",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["optimizer"], metrics["learning_rate"]) == ("RMSprop", 0.0005)
