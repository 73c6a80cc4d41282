"""Catalogue, results that survive: folders checked before training (and none made by a run that fails early),
weights and metrics written before the plots, write errors that name their file, the user's umask, temporary
files never left behind."""

import errno
import json
import os
import subprocess
import sys

import pytest
from catalogue_helpers import X, Y, assert_one_line_error, command, small_model, train

from minicnn import train as train_module
from minicnn.utils import atomic_write


@pytest.mark.parametrize(
    "what,out,message",
    [
        ("a folder below a file", "file/run", r"output folder .*/file/run: .*/file is a file, not a folder"),
        (
            "a folder that cannot be written",
            "/sys/minicnn-run",
            r"output folder /sys/minicnn-run: cannot create files "
            r"in /sys \(Permission denied\)",
        ),
        ("a plot's name taken by a folder", "taken", r"taken/history.png is a folder: the run writes a file"),
        ("the weights' name taken by a folder", "taken_w", r"taken_w/weights.npz is a folder"),
    ],
    ids=["below-a-file", "read-only", "history-png-folder", "weights-npz-folder"],
)
def test_cli_an_unusable_output_folder_is_refused_before_training(what, out, message, tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "taken" / "history.png").mkdir(parents=True)
    (tmp_path / "taken_w" / "weights.npz").mkdir(parents=True)
    proc = train(["--out", out if out.startswith("/") else str(tmp_path / out)])
    assert_one_line_error(proc, message)
    assert "Epoch 1/1" not in proc.stdout  # refused before the first epoch


def test_cli_an_unusable_checkpoint_folder_is_refused_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = train(["--checkpoint-dir", str(tmp_path / "file" / "ck"), "--out", str(tmp_path / "o")])
    assert_one_line_error(proc, r"checkpoint folder .*/file/ck: .*/file is a file, not a folder")
    assert "Epoch 1/1" not in proc.stdout and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args",
    [["--data-dir", "{tmp}/nothing"], ["--resume", "--checkpoint-dir", "{tmp}/none"]],
    ids=["missing-data", "resume-without-checkpoint"],
)
def test_cli_a_run_that_fails_before_training_makes_no_folder(args, tmp_path):
    env = (
        {"MINICNN_DATA": str(tmp_path / "none"), "HOME": str(tmp_path / "home"), "MINICNN_OFFLINE": "1"}
        if "--data-dir" in args
        else None
    )
    proc = train([a.format(tmp=tmp_path) for a in args] + ["--out", str(tmp_path / "out" / "run")], env_extra=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "none").exists()


def test_explain_that_fails_early_makes_no_folder(tmp_path):
    proc = command("explain", ["--backend", "numpy", "--index", "99999", "--out", str(tmp_path / "e")])
    assert_one_line_error(proc, r"--index must be below 10000")
    assert not (tmp_path / "e").exists()


def test_cli_a_failing_plot_keeps_the_weights_and_metrics(tmp_path, monkeypatch, capsys):
    from minicnn import plotting

    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(plotting, "plot_history", broken)
    monkeypatch.setenv("MINICNN_DATA", os.environ.get("MINICNN_DATA") or _data())
    out = tmp_path / "o"
    rc = train_module.main(
        ["--backend", "numpy", "--limit", "256", "--epochs", "1", "--verbose", "2", "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "could not write history.png (" in err and "No space left on device" in err
    assert "written: weights.npz, metrics.json, misclassified.png" in err
    assert json.loads((out / "metrics.json").read_text())["history"]["loss"]
    assert (out / "weights.npz").stat().st_size > 0 and sorted(os.listdir(out)) == [
        "metrics.json",
        "misclassified.png",
        "weights.npz",
    ]


def _data():
    from test_datasets import _real_mnist_dir

    return _real_mnist_dir()


def test_a_write_error_names_its_file(tmp_path):
    def too_large(fh):
        raise OSError(errno.EFBIG, "File too large")

    with pytest.raises(OSError, match=r"\[Errno 27\] cannot write .*/weights.npz: File too large"):
        atomic_write(tmp_path / "weights.npz", too_large)
    assert os.listdir(tmp_path) == []  # the temporary file went too


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_are_created_with_the_users_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        small_model().save_weights(tmp_path / "w.npz")
        atomic_write(tmp_path / "m.json", lambda fh: fh.write("{}"), mode="w")
    finally:
        os.umask(old)
    assert (tmp_path / "w.npz").stat().st_mode & 0o777 == mode
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == mode


def test_ctrl_c_while_writing_leaves_no_temporary_file(tmp_path):
    def interrupted(fh):
        fh.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "checkpoint.npz", interrupted)
    assert os.listdir(tmp_path) == []


def test_temporaries_left_by_a_killed_run_are_removed_at_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that no longer runs
    stale = tmp_path / f".checkpoint.npz.{dead.pid}.x1y2.tmp"
    live = tmp_path / f".checkpoint.npz.{os.getppid()}.a1b2.tmp"  # a running writer's: kept
    other = tmp_path / f".weights.npz.{dead.pid}.q.tmp"  # another file's: not this write's business
    for path in (stale, live, other):
        path.write_bytes(b"x" * 1000)
    small_model().fit(X, Y, batch_size=8, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(["checkpoint.npz", live.name, other.name])


def test_metrics_record_the_thread_count(tmp_path):
    proc = train(["--out", str(tmp_path / "o")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert "threads" in metrics and metrics["threads"] is None  # numpy: no thread pool of its own
    assert proc.stdout.strip().endswith(
        "wrote " + str(tmp_path / "o") + "/: weights.npz, metrics.json, history.png, misclassified.png"
    )
