"""Catalogue, resume that checks its settings: a checkpoint records what defines the run; resuming with other
settings is refused with the differences listed (the safe ones accepted on request); a checkpoint is never
replaced without resume or overwrite."""

import json

import numpy as np
import pytest
from catalogue_helpers import assert_one_line_error, small_model, train
from conftest import synthetic_digits

import minicnn as mc
from minicnn.checkpoint import load_checkpoint

X, Y = synthetic_digits(40, seed=2)
FIRST = {"batch_size": 8, "validation_split": 0.2}


def _first_epoch(tmp_path, **model_kwargs):
    small_model(**model_kwargs).fit(X, Y, epochs=1, verbose=0, checkpoint_dir=tmp_path, **FIRST)


# (what, how the resuming run differs: model kwargs, fit kwargs, data) and the setting that must be named
CHANGED = [
    ("another seed", {"seed": 5}, {}, None, "seed: 0 in the checkpoint, 5 now"),
    ("another batch size", {}, {"batch_size": 4}, None, "batch_size: 8 in the checkpoint, 4 now"),
    (
        "another learning rate",
        {"optimizer": mc.optimizers.Adadelta(learning_rate=0.5)},
        {},
        None,
        "optimizer: .*'learning_rate': 1.0.* in the checkpoint, .*'learning_rate': 0.5",
    ),
    ("another optimizer", {"optimizer": mc.optimizers.SGD()}, {}, None, "optimizer: .*Adadelta"),
    ("another validation split", {}, {"validation_split": 0.5}, None, "validation: 0.2 in the checkpoint, 0.5 now"),
    ("fewer samples (another --limit)", {}, {}, (X[:30], Y[:30]), "samples: 32 in the checkpoint, 24 now"),
    ("other data of the same size", {}, {}, (X[::-1].copy(), Y[::-1].copy()), "data: '[0-9a-f]+' in the checkpoint"),
    (
        "validation_data instead of a split",
        {},
        {"validation_split": 0.0, "validation_data": (X[:8], Y[:8])},
        None,
        "validation: 0.2 in the checkpoint, 'validation_data' now",
    ),
    (
        "another data set name",
        {},
        {"settings": {"dataset": "fashion_mnist"}},
        None,
        "dataset: None in the checkpoint, 'fashion_mnist' now",
    ),
]


@pytest.mark.parametrize("what,model_kwargs,fit_kwargs,data,named", CHANGED, ids=[c[0] for c in CHANGED])
def test_resuming_with_another_setting_is_refused_naming_it(what, model_kwargs, fit_kwargs, data, named, tmp_path):
    _first_epoch(tmp_path)
    model = small_model(**model_kwargs)
    before = model.get_weights()
    x, y = data or (X, Y)
    with pytest.raises(ValueError, match="the checkpoint was written by a run with other settings: .*" + named):
        model.fit(x, y, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True, **{**FIRST, **fit_kwargs})
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_safe_change_is_accepted_when_named_in_allow_changed(tmp_path):
    _first_epoch(tmp_path)
    hist = small_model().fit(
        X,
        Y,
        epochs=2,
        verbose=0,
        checkpoint_dir=tmp_path,
        resume=True,
        allow_changed=["batch_size"],
        **{**FIRST, "batch_size": 4},
    )
    assert hist.epoch == [0, 1]
    assert load_checkpoint(small_model(), tmp_path)["settings"]["batch_size"] == 4


def test_an_unsafe_setting_cannot_be_allowed_to_change(tmp_path):
    _first_epoch(tmp_path)
    with pytest.raises(ValueError, match=r"allow_changed: \['seed'\] cannot change on resume"):
        small_model(seed=3).fit(
            X, Y, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True, allow_changed=["seed"], **FIRST
        )


def test_the_refusal_suggests_allow_changed_for_a_safe_setting(tmp_path):
    _first_epoch(tmp_path)
    with pytest.raises(ValueError, match=r"--allow-changed batch_size accepts this"):
        small_model().fit(X, Y, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True, **{**FIRST, "batch_size": 4})


def test_more_epochs_is_always_allowed_and_resumes_exactly(tmp_path):
    straight = small_model()
    straight.fit(X, Y, epochs=3, verbose=0, **FIRST)
    _first_epoch(tmp_path)
    resumed = small_model()
    resumed.fit(X, Y, epochs=3, verbose=0, checkpoint_dir=tmp_path, resume=True, **FIRST)
    assert all(np.array_equal(a, b) for a, b in zip(straight.get_weights(), resumed.get_weights()))


def test_the_checkpoint_records_the_runs_settings(tmp_path):
    _first_epoch(tmp_path)
    settings = load_checkpoint(small_model(), tmp_path)["settings"]
    assert settings["seed"] == 0 and settings["batch_size"] == 8 and settings["validation"] == 0.2
    assert settings["samples"] == 32 and settings["validation_samples"] == 8 and settings["backend"] == "numpy"
    assert settings["optimizer"]["name"] == "Adadelta" and settings["optimizer"]["rho"] == 0.95
    assert settings["architecture"][0] == "conv2d/kernel[3, 3, 1, 4]" and "threads" in settings


def test_an_existing_checkpoint_is_not_replaced_without_resume_or_overwrite(tmp_path):
    _first_epoch(tmp_path)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(ValueError, match=r"checkpoint.npz already exists: resume=True \(--resume\) continues"):
        small_model(seed=4).fit(X, Y, epochs=1, verbose=0, checkpoint_dir=tmp_path, **FIRST)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_overwrite_starts_again_and_replaces_the_checkpoint(tmp_path):
    _first_epoch(tmp_path)
    small_model(seed=4).fit(X, Y, epochs=1, verbose=0, checkpoint_dir=tmp_path, overwrite=True, **FIRST)
    assert load_checkpoint(small_model(), tmp_path)["settings"]["seed"] == 4


def test_an_empty_checkpoint_dir_is_refused(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_dir is empty"):
        small_model().fit(X, Y, epochs=1, verbose=0, checkpoint_dir="", **FIRST)


def test_an_unusable_checkpoint_dir_is_noticed_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    model = small_model()
    before = model.get_weights()
    with pytest.raises(OSError, match=r"checkpoint folder .*/file/ck: .*/file is a file, not a folder"):
        model.fit(X, Y, epochs=1, verbose=0, checkpoint_dir=tmp_path / "file" / "ck", **FIRST)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # no step was taken


# --- the same through the command ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    proc = train(["--checkpoint-dir", str(folder / "ck"), "--out", str(folder / "out"), "--seed", "3"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return folder


@pytest.mark.parametrize(
    "args,named",
    [
        (["--seed", "4"], "seed: 3 in the checkpoint, 4 now"),
        (["--seed", "3", "--batch-size", "64"], "batch_size: 128 in the checkpoint, 64 now"),
        (["--seed", "3", "--learning-rate", "0.5"], "optimizer: "),
        (["--seed", "3", "--limit", "200"], "limit: 256 in the checkpoint, 200 now"),
        (["--seed", "3", "--validation-split", "0.5"], "validation: 0.2 in the checkpoint, 0.5 now"),
        (["--seed", "3", "--backend", "numba"], "backend: 'numpy' in the checkpoint, 'numba' now"),
    ],
    ids=["seed", "batch-size", "learning-rate", "limit", "validation-split", "backend"],
)
def test_cli_resume_with_other_settings_exits_2_naming_them(args, named, cli_checkpoint, tmp_path):
    proc = train(
        [
            "--epochs",
            "2",
            "--resume",
            "--checkpoint-dir",
            str(cli_checkpoint / "ck"),
            "--out",
            str(tmp_path / "o"),
            *args,
        ]
    )
    assert_one_line_error(proc, "other settings: .*" + named)
    assert not (tmp_path / "o").exists()  # nothing written, no folder made


def test_cli_allow_changed_accepts_a_safe_change(cli_checkpoint, tmp_path):
    import shutil

    shutil.copytree(cli_checkpoint / "ck", tmp_path / "ck")
    proc = train(
        [
            "--epochs",
            "2",
            "--resume",
            "--checkpoint-dir",
            str(tmp_path / "ck"),
            "--seed",
            "3",
            "--batch-size",
            "64",
            "--allow-changed",
            "batch_size",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads((tmp_path / "o" / "metrics.json").read_text())["history"]["loss"]) == 2


def test_cli_allow_changed_refuses_an_unsafe_name(tmp_path):
    assert_one_line_error(train(["--allow-changed", "seed"]), r"--allow-changed: expected settings among backend")


def test_cli_forgetting_resume_does_not_replace_the_checkpoint(cli_checkpoint, tmp_path):
    before = (cli_checkpoint / "ck" / "checkpoint.npz").read_bytes()
    proc = train(["--seed", "3", "--checkpoint-dir", str(cli_checkpoint / "ck"), "--out", str(tmp_path / "o")])
    assert_one_line_error(proc, r"checkpoint.npz already exists: .*--overwrite")
    assert (cli_checkpoint / "ck" / "checkpoint.npz").read_bytes() == before


def test_cli_empty_checkpoint_dir_is_refused():
    assert_one_line_error(train(["--checkpoint-dir", ""]), r"--checkpoint-dir: expected a folder name")
