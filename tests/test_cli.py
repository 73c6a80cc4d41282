"""The commands as a user meets them: logs that read well in a file (one line per epoch, no carriage returns), a live
bar on a terminal whose last frame is not repeated, --verbose, --quiet, --version, plain-text --help, --csv and
--tensorboard, the image counts after the validation split, and each data set beside its own reference figures."""

import csv
import io
import os
import re
import subprocess
import sys

import pytest
from optional_modules import need
from test_datasets import _real_mnist_dir

from minicnn import cli
from minicnn.progress import Progress


def run(module, args, **kwargs):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, timeout=600, **kwargs
    )


def screen(text):
    """What a terminal shows for ``text``: on each line, only what follows its last carriage return."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n")]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_piped_run_logs_one_line_per_epoch_and_writes_csv_and_tensorboard(tmp_path):
    need("tensorboardX", "tensorboard")
    out = tmp_path / "run"
    proc = run(
        "minicnn.train",
        [
            "--limit",
            "512",
            "--epochs",
            "2",
            "--data-dir",
            _real_mnist_dir(),
            "--out",
            str(out),
            "--csv",
            str(tmp_path / "log.csv"),
            "--tensorboard",
            str(tmp_path / "tb"),
        ],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stdout + proc.stderr
    epoch_lines = [line for line in proc.stdout.splitlines() if line.startswith("Epoch ")]
    assert [line.split(" - ")[0] for line in epoch_lines] == ["Epoch 1/2", "Epoch 2/2"]
    assert all("val_accuracy: " in line for line in epoch_lines)
    assert "training on 410 images, validating on 102 (mnist" in proc.stdout  # 512 - int(0.2 * 512)
    assert "(the R keras tutorial, 10 epochs: test loss 0.023, test accuracy 0.993, misclassified 70)" in proc.stdout
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"] and float(rows[1]["val_loss"]) > 0
    assert {"train", "validation"} <= set(os.listdir(tmp_path / "tb"))
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["train_images"], metrics["validation_images"]) == (410, 102)
    assert metrics["params"]["verbose"] == 2


def test_verbose_0_shows_no_epochs_and_verbose_1_piped_has_no_carriage_returns(tmp_path, capsys):
    # in this process (its captured stdout is not a terminal either): faster than a new one
    from minicnn.train import main

    common = ["--limit", "256", "--epochs", "1", "--data-dir", _real_mnist_dir()]
    assert main([*common, "--verbose", "0", "--out", str(tmp_path / "a")]) == 0
    quiet = capsys.readouterr()
    assert "Epoch" not in quiet.out and "Total params" not in quiet.out and "test accuracy" in quiet.out
    assert main([*common, "--verbose", "1", "--out", str(tmp_path / "b")]) == 0
    bar = capsys.readouterr()
    assert "\r" not in bar.out + bar.err
    lines = bar.out.splitlines()
    assert lines[lines.index("Epoch 1/1") + 1].startswith("2/2 - ")  # Keras's layout off a terminal


def test_quiet_is_a_deprecated_verbose_2():
    parser = __import__("minicnn.train", fromlist=["build_parser"]).build_parser()
    args = parser.parse_args(["--quiet"])
    assert cli.resolve_verbose(args, stream=Terminal()) == 2
    assert cli.resolve_verbose(parser.parse_args([]), stream=Terminal()) == 1
    assert cli.resolve_verbose(parser.parse_args([]), stream=io.StringIO()) == 2
    with pytest.raises(ValueError, match="contradicts"):
        cli.resolve_verbose(parser.parse_args(["--quiet", "--verbose", "1"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--verbose", "3"])


def main_of(module):
    return __import__(module, fromlist=["main"]).main


@pytest.mark.parametrize(
    "module",
    [
        "minicnn.train",
        "minicnn.explain",
        "minicnn.export",
        "benchmarks.train",
        "benchmarks.kernels",
        "benchmarks.keras_run",
        "benchmarks.gpu_check",
    ],
)
def test_help_is_plain_text(module, capsys, monkeypatch):
    # benchmarks/ is not installed (it runs from the project's folder): import it from there
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with pytest.raises(SystemExit) as exit_:
        main_of(module)(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and not re.search(r"``|:class:|:meth:|:mod:|:func:", out), out


@pytest.mark.parametrize("module", ["minicnn.train", "minicnn.explain"])
def test_version_and_validated_choices(module, capsys):
    from minicnn import __version__

    with pytest.raises(SystemExit) as exit_:
        main_of(module)(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"minicnn {__version__}"
    with pytest.raises(SystemExit) as exit_:
        main_of(module)(["--backend", "tpu"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice: 'tpu'" in err and err.startswith("error: ")
    with pytest.raises(SystemExit):
        main_of(module)(["--help"])
    assert re.search(r"--seed SEED +seed of", capsys.readouterr().out)


def test_plain_text_reduces_rest_markup():
    doc = "Uses ``fit`` and :class:`~minicnn.callbacks.History`, :func:`minicnn.set_seed` and `x`. Example::\n\n  a\n"
    assert cli.plain_text(doc) == "Uses fit and History, minicnn.set_seed and x. Example:\n\n  a\n"


def test_a_live_bar_on_a_terminal_ends_as_one_summary_line():
    term = Terminal()
    progress = Progress(1, epochs=1, steps=3, file=term)
    progress.begin(0)
    for done in (1, 2, 3):
        progress.update(done, 0.5, 0.9)
    progress.end(0, {"loss": 0.5, "accuracy": 0.9})
    raw = term.getvalue()
    assert "\r" in raw  # it was live
    shown = [line.strip() for line in screen(raw) if line.strip()]
    assert shown[0] == "Epoch 1/1" and len(shown) == 2 and shown[1].startswith("3/3 - ")


def test_verbose_1_off_a_terminal_prints_the_title_and_one_line():
    text = io.StringIO()
    progress = Progress(1, epochs=2, steps=3, file=text)
    progress.begin(1)
    progress.update(3, 0.5, 0.9)
    progress.end(1, {"loss": 0.5})
    assert "\r" not in text.getvalue() and text.getvalue().splitlines()[0] == "Epoch 2/2"
    assert len(text.getvalue().splitlines()) == 2
