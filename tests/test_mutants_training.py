"""The training loop (minicnn/training.py) and its data helpers (minicnn/batches.py) on what mutation testing
(mutmut) showed no other fast test pinned down: the validation split's bounds and messages, evaluation in batches
(weights, penalties, progress), the argument checks of compile/evaluate/fit, the step's finite check, gradients
with penalties against central differences, and the order of fit's callbacks. Tiny models on the NumPy backend."""

import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import layers
from minicnn.batches import epoch_order, evaluate_arrays, split_validation
from minicnn.nan_guard import NonFiniteLoss
from minicnn.training import LambdaCallback, NotCompiledError


def _model(seed=0, regularized=False, compiled=True, activation="softmax"):
    reg = mc.regularizers.L2(0.1) if regularized else None
    model = mc.Sequential(
        [
            layers.Dense(4, activation="tanh", kernel_regularizer=reg, input_shape=(3,)),
            layers.Dense(3, activation=activation, bias_regularizer=mc.regularizers.L1(0.05) if regularized else None),
        ],
        seed=seed,
        backend="numpy",
        dtype="float64",
    )
    if compiled:
        model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.SGD(learning_rate=0.1))
    return model


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)), np.eye(3)[rng.integers(0, 3, n)]


def _per_sample_loss(model, x, y):
    """The cross-entropy of each sample from the model's outputs, clipped as Keras clips (eps 1e-7)."""
    p = model.predict(x)
    q = np.clip(p / p.sum(axis=1, keepdims=True), 1e-7, 1 - 1e-7)
    return -(y * np.log(q)).sum(axis=1), (p.argmax(1) == y.argmax(1)).astype(float)


# --- batches.py -----------------------------------------------------------------------------------------------------
def test_the_validation_split_is_the_last_floor_fraction_and_zero_keeps_the_arrays():
    x, y = np.arange(10), np.arange(10) * 2
    xt, yt, xv, yv = split_validation(x, y, 0.25)  # 2.5 samples: 2 go to validation
    assert list(xt) == list(range(8)) and list(xv) == [8, 9] and list(yt) == list(x[:8] * 2) and list(yv) == [16, 18]
    same = split_validation(x, y, 0.0)
    assert same[0] is x and same[1] is y and same[2] is None and same[3] is None


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, True, "0.2"])
def test_a_validation_split_outside_zero_one_is_refused(bad):
    with pytest.raises(
        ValueError, match=r"^validation_split must be in \[0, 1\), got " + repr(bad).replace(".", r"\.")
    ):
        split_validation(np.zeros(10), np.zeros(10), bad)


def test_a_validation_split_too_small_for_one_sample_names_the_empty_set():
    with pytest.raises(ValueError, match=r"^validation_split=0\.05 of 10 samples leaves an empty validation set$"):
        split_validation(np.zeros(10), np.zeros(10), 0.05)
    assert len(split_validation(np.zeros(10), np.zeros(10), 0.1)[2]) == 1


def test_the_epoch_order_is_the_seed_and_epochs_stream_or_the_plain_order():
    for seed, epoch in ((0, 0), (3, 1), (3, 2)):
        np.testing.assert_array_equal(epoch_order(seed, epoch, 7), np.random.default_rng([seed, epoch]).permutation(7))
    assert not np.array_equal(epoch_order(3, 1, 20), epoch_order(3, 2, 20))
    np.testing.assert_array_equal(epoch_order(3, 1, 7, shuffle=False), np.arange(7))
    np.testing.assert_array_equal(epoch_order(3, 1, 7, True), epoch_order(3, 1, 7))


class _Progress:
    wants_values = True

    def __init__(self):
        self.updates = []

    def update(self, step, loss, acc):
        self.updates.append((step, loss, acc))


@pytest.mark.parametrize("regularized", [False, True])
def test_evaluation_in_batches_is_the_sample_mean_plus_the_penalties_and_reports_every_tenth_step(regularized):
    model = _model(regularized=regularized)
    x, y = _data(23)
    losses, hits = _per_sample_loss(model, x, y)
    penalty = 0.0
    if regularized:
        kernel, bias = model.layers[0].params["kernel"], model.layers[1].params["bias"]
        bias[...] = [0.3, -0.2, 0.1]
        losses, hits = _per_sample_loss(model, x, y)
        penalty = 0.1 * np.sum(kernel**2) + 0.05 * np.sum(np.abs(bias))
    progress = _Progress()
    be = model.backend
    loss, acc = evaluate_arrays(model, be.asarray(x), be.asarray(y), 2, progress)  # 12 batches, the last of 1
    assert float(loss) == pytest.approx(losses.mean() + penalty, rel=1e-12)
    assert float(acc) == pytest.approx(hits.mean(), rel=1e-12)
    assert [u[0] for u in progress.updates] == [10]
    assert progress.updates[0][1] == pytest.approx(losses[:20].mean() + penalty, rel=1e-12)
    assert progress.updates[0][2] == pytest.approx(hits[:20].mean(), rel=1e-12)
    quiet = _Progress()
    quiet.wants_values = False
    evaluate_arrays(model, be.asarray(x), be.asarray(y), 2, quiet)
    assert quiet.updates == []
    assert float(model.evaluate(x, y, batch_size=5, verbose=0)[0]) == pytest.approx(float(loss), rel=1e-12)


def test_weighted_evaluation_weighs_the_loss_by_sample_and_not_the_accuracy():
    model = _model()
    x, y = _data(7)
    losses, hits = _per_sample_loss(model, x, y)
    w = np.array([0.0, 1.0, 2.0, 0.5, 1.0, 3.0, 0.25])
    be = model.backend
    loss, acc = evaluate_arrays(model, be.asarray(x), be.asarray(y), 3, sample_weight=be.asarray(w))
    assert float(loss) == pytest.approx(np.sum(w * losses) / 7, rel=1e-12)
    assert float(acc) == pytest.approx(hits.mean(), rel=1e-12)
    assert model.evaluate(x, y, batch_size=3, verbose=0, sample_weight=w)[0] == pytest.approx(float(loss), rel=1e-12)


# --- training.py: compile, evaluate, the step ----------------------------------------------------------------------
def test_compile_keeps_one_accuracy_metric_and_names_an_unknown_one():
    model = _model(compiled=False)
    model.compile(metrics=["acc", "accuracy"])
    assert model.metrics == ["accuracy"]
    model.compile(metrics=None)
    assert model.metrics == []
    with pytest.raises(ValueError, match=r"^unknown metric 'mse'; known metrics: accuracy$"):
        model.compile(metrics=["accuracy", "mse"])


@pytest.mark.parametrize("what", ["fit", "evaluate"])
def test_a_model_not_compiled_says_to_compile_before_what_was_called(what):
    model = _model(compiled=False)
    x, y = _data(4)
    with pytest.raises(
        NotCompiledError, match=rf"^call model\.compile\(loss=\.\.\., optimizer=\.\.\.\) before {what}\(\)$"
    ):
        getattr(model, what)(x, y, verbose=0)
    model.compile(loss="categorical_crossentropy")
    model.optimizer = None
    with pytest.raises(NotCompiledError):
        getattr(model, what)(x, y, verbose=0)


def test_evaluate_checks_its_batch_size_and_returns_a_dict_on_request(capsys):
    model = _model()
    x, y = _data(5)
    with pytest.raises(ValueError, match=r"^batch_size must be an int >= 1"):
        model.evaluate(x, y, batch_size=0, verbose=0)
    listed = model.evaluate(x, y, verbose=0)
    assert model.evaluate(x, y, verbose=0, return_dict=True) == {"loss": listed[0], "accuracy": listed[1]}
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("regularized", [False, True])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_compute_gradients_are_the_losss_central_differences_penalties_included(regularized, activation):
    # softmax output: the loss gives dL/dz past the softmax; sigmoid: the plain dL/dp through the activation
    model = _model(regularized=regularized, activation=activation)
    x, y = _data(5)
    loss, grads = model.compute_gradients(x, y)
    assert model.through_softmax() == (activation == "softmax")
    weights = model.get_weights()

    def total_loss(ws):
        model.set_weights(ws)
        return model.evaluate(x, y, batch_size=5, verbose=0)[0]

    assert loss == pytest.approx(total_loss(weights), rel=1e-12)
    h = 1e-6
    for k, w in enumerate(weights):
        numeric = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            plus, minus = [a.copy() for a in weights], [a.copy() for a in weights]
            plus[k][idx] += h
            minus[k][idx] -= h
            numeric[idx] = (total_loss(plus) - total_loss(minus)) / (2 * h)
        np.testing.assert_allclose(grads[k], numeric, rtol=1e-5, atol=1e-8)


def test_compute_gradients_without_compile_uses_the_cross_entropy_and_dropout_only_in_training():
    model = mc.Sequential(
        [layers.Dropout(0.5, seed=1, input_shape=(3,)), layers.Dense(3, activation="softmax")],
        seed=0,
        backend="numpy",
        dtype="float64",
    )
    x, y = _data(6)
    loss, grads = model.compute_gradients(x, y)
    losses, _ = _per_sample_loss(model, x, y)
    assert loss == pytest.approx(losses.mean(), rel=1e-12)
    assert model.compute_gradients(x, y)[0] == loss  # dropout off by default: the same loss every call
    dropped, _ = model.compute_gradients(x, y, training=True)
    assert dropped != pytest.approx(loss, rel=1e-6)


def test_regularization_loss_is_the_sum_of_every_penalty_and_none_without_any():
    model = _model(regularized=True)
    kernel, bias = model.layers[0].params["kernel"], model.layers[1].params["bias"]
    bias[...] = [0.3, -0.2, 0.1]
    want = 0.1 * np.sum(kernel**2) + 0.05 * np.sum(np.abs(bias))
    assert float(model.regularization_loss()) == pytest.approx(want, rel=1e-12)
    assert float(model.regularization_loss([model.layers[1]])) == pytest.approx(0.05 * 0.6, rel=1e-12)
    assert _model().regularization_loss() is None


def test_a_step_with_a_non_finite_loss_raises_before_the_update_when_checked():
    model = _model()
    x, y = _data(4)
    x[0, 0] = np.nan
    before = model.get_weights()
    be = model.backend
    with pytest.raises(NonFiniteLoss):
        model.train_step(be.asarray(x), be.asarray(y), check_finite=True)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, model.get_weights()))
    loss, _ = model.train_step(be.asarray(x), be.asarray(y))  # unchecked: the step goes on
    assert not math.isfinite(float(loss))


def test_a_step_returns_the_batchs_loss_and_accuracy_before_its_update():
    model = _model()
    x, y = _data(6)
    losses, hits = _per_sample_loss(model, x, y)
    before = model.get_weights()
    be = model.backend
    loss, acc = model.train_step(be.asarray(x), be.asarray(y))
    assert float(loss) == pytest.approx(losses.mean(), rel=1e-12) and float(acc) == pytest.approx(hits.mean())
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# --- training.py: fit ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"verbose": 3}, r"^verbose must be 0, 1 or 2, got 3$"),
        ({"nan_guard": "sometimes"}, r"^nan_guard must be True, False, 'immediate' or 'deferred', got 'sometimes'$"),
        ({"initial_epoch": -1}, r"^initial_epoch must be an int >= 0"),
    ],
)
def test_fit_refuses_bad_settings_by_name(kwargs, message):
    x, y = _data(6)
    with pytest.raises(ValueError, match=message):
        _model().fit(x, y, **{"verbose": 0, **kwargs})


def test_fit_refuses_x_and_y_of_different_lengths():
    x, y = _data(6)
    with pytest.raises(ValueError, match=r"^x has 6 samples but y has 5$"):
        _model().fit(x, y[:5], verbose=0)


def test_fit_runs_the_callbacks_in_the_reference_order_and_from_initial_epoch():
    events = []
    cb = LambdaCallback(
        on_train_begin=lambda logs=None: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs=None: events.append(("epoch_begin", epoch)),
        on_train_batch_begin=lambda step, logs=None: events.append(("batch_begin", step)),
        on_train_batch_end=lambda step, logs=None: events.append(("batch_end", step, logs["loss"])),
        on_epoch_end=lambda epoch, logs=None: events.append(("epoch_end", epoch, logs["loss"])),
        on_train_end=lambda logs=None: events.append("train_end"),
    )
    x, y = _data(5)
    model, twin = _model(seed=3), _model(seed=3)
    hist = model.fit(x, y, batch_size=2, epochs=3, initial_epoch=1, verbose=0, callbacks=[cb])
    assert hist.epoch == [1, 2] and hist.params == {"verbose": 0, "epochs": 3, "steps": 3}
    assert len(hist.history["seconds"]) == 2 and all(s >= 0 for s in hist.history["seconds"])
    names = [e if isinstance(e, str) else e[:2] for e in events]
    per_epoch = lambda k: [("epoch_begin", k), ("batch_begin", 0), ("batch_end", 0), ("batch_begin", 1)]  # noqa: E731
    assert names[:5] == ["train_begin", *per_epoch(1)] and names[-1] == "train_end"
    assert names.count(("batch_begin", 2)) == 2 and ("epoch_begin", 0) not in names
    # the same steps by hand: epoch k's order, batches of 2, 2 and 1; the epoch loss their size-weighted mean
    for k in (1, 2):
        order = epoch_order(twin.seed, k, 5)
        results = [twin.train_on_batch(x[order[s : s + 2]], y[order[s : s + 2]]) for s in (0, 2, 4)]
        seen_loss = [e[2] for e in events if e[0] == "batch_end"][3 * (k - 1) : 3 * k]
        assert seen_loss[0] == pytest.approx(results[0][0], rel=1e-12)
        assert seen_loss[1] == pytest.approx((results[0][0] + results[1][0]) / 2, rel=1e-12)
        want = (2 * results[0][0] + 2 * results[1][0] + results[2][0]) / 5
        assert seen_loss[2] == pytest.approx(want, rel=1e-12)
        assert hist.history["loss"][k - 1] == pytest.approx(want, rel=1e-12)
        assert hist.history["accuracy"][k - 1] == pytest.approx(
            (2 * results[0][1] + 2 * results[1][1] + results[2][1]) / 5
        )


def test_fit_with_validation_data_evaluates_it_with_the_epochs_final_weights():
    x, y = _data(8)
    xv, yv = _data(5, seed=1)
    model = _model()
    logs = []
    hist = model.fit(
        x,
        y,
        batch_size=3,
        epochs=2,
        verbose=0,
        validation_data=(xv, yv),
        callbacks=[LambdaCallback(on_epoch_end=lambda e, lg=None: logs.append((dict(lg), model.get_weights())))],
    )
    for k, (lg, weights) in enumerate(logs):
        twin = _model()
        twin.set_weights(weights)
        loss, acc = twin.evaluate(xv, yv, batch_size=3, verbose=0)
        assert lg["val_loss"] == pytest.approx(loss, rel=1e-12) == hist.history["val_loss"][k]
        assert lg["val_accuracy"] == pytest.approx(acc, rel=1e-12)


def test_fit_stops_after_the_epoch_a_callback_sets_stop_training():
    model = _model()
    x, y = _data(4)

    def stop(epoch, logs=None):
        model.stop_training = epoch == 1

    hist = model.fit(x, y, epochs=5, verbose=0, callbacks=[LambdaCallback(on_epoch_end=stop)])
    assert hist.epoch == [0, 1]
    hist = model.fit(x, y, epochs=2, verbose=0)  # a new fit starts with stop_training cleared
    assert hist.epoch == [0, 1]


def test_fit_with_sample_weights_takes_weighted_steps():
    x, y = _data(4)
    w = np.array([1.0, 0.0, 2.0, 0.5])
    a, b = _model(seed=2), _model(seed=2)
    hist = a.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, sample_weight=w)
    loss, _ = b.train_on_batch(x, y, sample_weight=w)
    assert hist.history["loss"][0] == pytest.approx(loss, rel=1e-12)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-12)


def test_fit_with_epochs_zero_trains_nothing():
    model = _model()
    x, y = _data(4)
    before = model.get_weights()
    hist = model.fit(x, y, epochs=0, verbose=0)
    assert hist.epoch == [] and all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_evaluate_says_how_many_batches_it_took_and_what_it_returns(capsys):
    # 66 samples in batches of the default 32 take 3 batches; the line shows the results that evaluate returns.
    model = _model()
    x, y = _data(66)
    loss, acc = model.evaluate(x, y)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("3/3 - ") and line.endswith(f"loss: {loss:.4f} - accuracy: {acc:.4f}")
    model.evaluate(x, y, batch_size=10, verbose=2)
    assert capsys.readouterr().out.startswith("7/7 - ")
    model.evaluate(x, y, verbose=0)
    assert capsys.readouterr().out == ""


def test_evaluate_draws_a_live_bar_on_a_terminal_by_default_and_not_with_verbose_2(monkeypatch, capsys):
    from minicnn import progress

    monkeypatch.setattr(progress, "is_terminal", lambda file: True)
    model = _model()
    x, y = _data(66)
    model.evaluate(x, y)
    assert "\r" in capsys.readouterr().out  # tqdm's frames
    model.evaluate(x, y, verbose=2)
    assert "\r" not in capsys.readouterr().out
