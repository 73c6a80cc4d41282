"""Catalogue, the NaN guard that guards the weights and the optimizer state, non-finite hyperparameters, and the
API misuses that used to fail late or silently."""

import math

import numpy as np
import pytest
from catalogue_helpers import X, Y, assert_one_line_error, command, small_model, train

import minicnn as mc
from minicnn import layers
from minicnn.callbacks import EarlyStopping, LambdaCallback
from minicnn.nan_guard import StateGuard

INF, NAN = math.inf, math.nan

BAD_HYPERPARAMETERS = [
    (
        "Adadelta learning_rate inf",
        lambda: mc.optimizers.Adadelta(learning_rate=INF),
        "learning_rate must be positive and finite, got inf",
    ),
    ("Adadelta learning_rate nan", lambda: mc.optimizers.Adadelta(learning_rate=NAN), "learning_rate .* got nan"),
    ("Adadelta learning_rate as text", lambda: mc.optimizers.Adadelta(learning_rate="1"), "learning_rate .* got '1'"),
    ("Adadelta epsilon inf", lambda: mc.optimizers.Adadelta(epsilon=INF), "epsilon must be positive and finite"),
    ("Adadelta epsilon nan", lambda: mc.optimizers.Adadelta(epsilon=NAN), "epsilon must be positive and finite"),
    ("Adadelta rho nan", lambda: mc.optimizers.Adadelta(rho=NAN), r"rho must be in \[0, 1\), got nan"),
    ("Adadelta rho inf", lambda: mc.optimizers.Adadelta(rho=INF), r"rho must be in \[0, 1\)"),
    ("SGD learning_rate inf", lambda: mc.optimizers.SGD(learning_rate=INF), "learning_rate must be positive"),
    ("SGD momentum nan", lambda: mc.optimizers.SGD(momentum=NAN), r"momentum must be in \[0, 1\)"),
    ("Adam epsilon inf", lambda: mc.optimizers.Adam(epsilon=INF), "epsilon must be positive and finite"),
    ("Adam beta_1 nan", lambda: mc.optimizers.Adam(beta_1=NAN), r"beta_1 must be in \[0, 1\)"),
    ("Adam beta_2 inf", lambda: mc.optimizers.Adam(beta_2=INF), r"beta_2 must be in \[0, 1\)"),
    (
        "AdamW weight_decay inf",
        lambda: mc.optimizers.AdamW(weight_decay=INF),
        "weight_decay must be a non-negative finite float",
    ),
    ("RMSprop epsilon nan", lambda: mc.optimizers.RMSprop(epsilon=NAN), "epsilon must be positive and finite"),
    ("RMSprop learning_rate inf", lambda: mc.optimizers.RMSprop(learning_rate=INF), "learning_rate must be"),
]


@pytest.mark.parametrize("what,make,message", BAD_HYPERPARAMETERS, ids=[c[0] for c in BAD_HYPERPARAMETERS])
def test_a_non_finite_hyperparameter_is_refused_where_given(what, make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_cli_a_non_finite_learning_rate_exits_2(value):
    assert_one_line_error(train(["--learning-rate", value]), r"--learning-rate: expected a positive number")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_huge_inputs_that_freeze_adadelta_stop_training_with_the_last_finite_state():
    # inputs near 1e30: the squared gradients overflow, Adadelta's accumulators reach infinity and would freeze
    # their weights silently while the loss still looks finite.
    model = small_model(seed=1)
    x = X * np.float32(1e30)
    hist = model.fit(x, Y, batch_size=4, epochs=2, verbose=0, refresh_every=2)
    assert hist.stopped is not None and hist.stopped["reason"] == "nan"
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert all(np.isfinite(a).all() for a in model.optimizer.accumulated_grad)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_update_that_makes_the_weights_infinite_is_undone(capsys):
    class HugeStep(mc.optimizers.SGD):
        def update_rule(self, xp, param, grad, *slots):
            param -= grad * np.float32(1e38) * np.float32(1e38)  # infinite on the first update

    model = small_model(optimizer=HugeStep(learning_rate=0.1))
    initial = model.get_weights()
    hist = model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    assert hist.stopped["reason"] == "nan"
    assert all(np.array_equal(a, b) for a, b in zip(initial, model.get_weights()))  # step 0: the initial state
    assert "keeps the weights of step 0 (the last state found finite)" in capsys.readouterr().err


def test_the_state_guard_names_the_optimizer_state():
    model = small_model()
    model.train_on_batch(X, Y)
    guard = StateGuard(model, every=1)
    model.optimizer.accumulated_delta[2][...] = np.inf
    assert guard.first_bad() == "the optimizer state 'accumulated_delta'"
    assert guard.restore() == 0 and guard.first_bad() is None


def test_the_guard_keeps_a_finite_run_bitwise_unchanged():
    a, b = small_model(seed=4), small_model(seed=4)
    a.fit(X, Y, batch_size=4, epochs=2, verbose=0, nan_guard=False)
    b.fit(X, Y, batch_size=4, epochs=2, verbose=0, refresh_every=1)
    assert all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


# --- API misuse --------------------------------------------------------------------------------------------
def _uncompiled():
    return mc.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))], seed=0, backend="numpy")


def _compute_gradients_then_fit():
    model = _uncompiled()
    model.compute_gradients(np.ones((2, 4)), np.eye(3)[:2])
    model.fit(np.ones((2, 4)), np.eye(3)[:2], verbose=0)


MISUSES = [
    (
        "fit after compute_gradients on an uncompiled model",
        _compute_gradients_then_fit,
        ValueError,
        r"call model.compile\(loss=..., optimizer=...\) before fit\(\)",
    ),
    (
        "input_shape with a negative size",
        lambda: mc.Sequential([layers.Dense(2, input_shape=(-28, 28, 1))]),
        ValueError,
        r"input_shape \(-28, 28, 1\): each size must be an int >= 1, got -28",
    ),
    (
        "input_shape with a zero",
        lambda: mc.Sequential([layers.Dense(2, input_shape=(0,))]),
        ValueError,
        r"each size must be an int >= 1, got 0",
    ),
    (
        "input_shape with a fraction",
        lambda: mc.Sequential([layers.Dense(2, input_shape=(2.5,))]),
        ValueError,
        r"each size must be an int >= 1, got 2.5",
    ),
    (
        "validation_split as text",
        lambda: small_model().fit(X, Y, validation_split="0.2", verbose=0),
        ValueError,
        r"validation_split must be in \[0, 1\), got '0.2'",
    ),
    (
        "validation_split True",
        lambda: small_model().fit(X, Y, validation_split=True, verbose=0),
        ValueError,
        r"validation_split must be in \[0, 1\), got True",
    ),
    (
        "callbacks not a list",
        lambda: small_model().fit(X, Y, callbacks=EarlyStopping("loss"), verbose=0),
        TypeError,
        r"callbacks must be a list of callbacks, got one EarlyStopping: pass callbacks=\[EarlyStopping\(...\)\]",
    ),
    (
        "callbacks holding a function",
        lambda: small_model().fit(X, Y, callbacks=[print], verbose=0),
        TypeError,
        r"callbacks must hold Callback objects",
    ),
    (
        "callbacks as a string",
        lambda: small_model().fit(X, Y, callbacks="early", verbose=0),
        TypeError,
        r"callbacks must be a list of callbacks, got str",
    ),
    (
        "EarlyStopping on val_loss without validation",
        lambda: small_model().fit(X, Y, verbose=0, callbacks=[EarlyStopping()]),
        ValueError,
        r"EarlyStopping monitors 'val_loss', which this fit does not report .* validation_split=",
    ),
    (
        "EarlyStopping on an unknown metric",
        lambda: small_model().fit(
            X, Y, verbose=0, validation_split=0.25, callbacks=[EarlyStopping("val_auc", mode="max")]
        ),
        ValueError,
        r"monitors 'val_auc'.*reports loss, accuracy, val_loss, val_accuracy",
    ),
    ("seed 1.5", lambda: mc.Sequential(seed=1.5), ValueError, r"seed must be a non-negative int or None, got 1.5"),
    ("seed True", lambda: mc.Sequential(seed=True), ValueError, r"seed must be a non-negative int or None, got True"),
    ("seed -1", lambda: mc.Sequential(seed=-1), ValueError, r"got -1"),
    ("seed as text", lambda: mc.Sequential(seed="7"), ValueError, r"got '7'"),
]


@pytest.mark.parametrize("what,call,exc,message", MISUSES, ids=[c[0] for c in MISUSES])
def test_an_api_misuse_gets_a_clear_error(what, call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_early_stopping_error_comes_before_the_first_epoch():
    seen = []
    with pytest.raises(ValueError):
        small_model().fit(
            X, Y, verbose=0, callbacks=[LambdaCallback(on_epoch_end=lambda e, l: seen.append(e)), EarlyStopping()]
        )
    assert seen == []


def test_one_optimizer_given_to_two_models_keeps_a_state_per_model():
    shared = mc.optimizers.Adadelta()
    a, b, alone = small_model(seed=1, optimizer=shared), small_model(seed=1, optimizer=shared), small_model(seed=1)
    a.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    b.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    alone.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    assert a.optimizer is shared and b.optimizer is not shared and b.optimizer.iterations == 2
    assert all(np.array_equal(p, q) for p, q in zip(b.get_weights(), alone.get_weights()))


def test_build_after_training_keeps_the_weights():
    model = small_model()
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    trained = model.get_weights()
    model.build((28, 28, 1))
    assert all(np.array_equal(p, q) for p, q in zip(trained, model.get_weights()))


def test_build_for_another_shape_after_building_is_refused():
    with pytest.raises(ValueError, match=r"the model is built for inputs of shape \(28, 28, 1\), not \(32, 32, 1\)"):
        small_model().build((32, 32, 1))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--batch", "70000"], r"--batch: expected an integer from 1 to 4096"),
        (
            ["--steps", "100000"],
            r"--steps 100000 is more than one pass over the 60000 training images allows: at most "
            r"469 steps",
        ),
    ],
    ids=["batch", "steps"],
)
def test_explain_refuses_what_it_cannot_do(args, message, tmp_path):
    assert_one_line_error(command("explain", ["--backend", "numpy", "--out", str(tmp_path / "e"), *args]), message)


def test_gpu_check_without_a_gpu_says_so_once(tmp_path):
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here: the missing-GPU message cannot be shown")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path / "g")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("error: the 'cupy' backend needs CuPy") == 1 and not (tmp_path / "g").exists()
