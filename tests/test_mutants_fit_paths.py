"""fit's paths that mutation testing (mutmut) found reached only by the MPI tests, which run in other processes:
a stand-in strategy with the interface of minicnn.distributed.MPIStrategy (one simulated rank of one or two) shows
what fit asks of it and does with its answers. Also the checks of a resume that has nothing left to do. Tiny
models on the NumPy backend."""

import io
import time

import numpy as np
import pytest

import minicnn as mc
from minicnn import layers, progress, training
from minicnn.batches import evaluate_arrays
from minicnn.checkpoint import load_checkpoint


class StandInStrategy:
    """One rank of ``size``: the whole batch is this rank's shard and the 'allreduce' is the identity, so training
    with it must equal training without it; every call is recorded."""

    def __init__(self, rank=0, size=1):
        self.rank, self.size, self.is_root = rank, size, rank == 0
        self.calls = []

    def begin_fit(self, model, n_samples, batch_size, verbose):
        self.calls.append(("begin_fit", model, n_samples, batch_size, verbose))
        return verbose if self.is_root else 0

    def shard(self, model, idx):
        self.calls.append(("shard", int(idx.shape[0])))
        self.sharded_for = getattr(self, "sharded_for", set()) | {id(model)}
        return idx

    def average_gradients(self, model, loss, acc):
        self.calls.append(("average_gradients",))
        return loss, acc

    def evaluate(self, model, xb, yb, batch_size):
        self.calls.append(("evaluate", int(xb.shape[0]), batch_size))
        loss, acc = evaluate_arrays(model, xb, yb, batch_size)
        return float(loss), float(acc)


def _model(seed=3):
    model = mc.Sequential(
        [layers.Dense(5, activation="relu", input_shape=(4,)), layers.Dense(3, activation="softmax")],
        seed=seed,
        backend="numpy",
        dtype="float64",
    )
    model.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.SGD(learning_rate=0.1))
    return model


def _data(n=20, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), np.eye(3)[rng.integers(0, 3, n)]


def test_fit_with_a_one_rank_strategy_trains_as_without_and_asks_it_what_fit_needs():
    x, y = _data()
    plain, spread, strategy = _model(), _model(), StandInStrategy()
    h_plain = plain.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, verbose=0)
    h_spread = spread.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, verbose=0, distributed=strategy)
    for a, b in zip(plain.get_weights(), spread.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h_plain.history["val_loss"] == h_spread.history["val_loss"]
    assert strategy.calls[0] == ("begin_fit", spread, 15, 8, 0)  # 15 training samples after the split
    steps = [c for c in strategy.calls if c[0] == "shard"]
    assert [c[1] for c in steps] == [8, 7] * 2  # every step's global batch, the last one partial
    assert strategy.calls.count(("average_gradients",)) == 4
    assert strategy.sharded_for == {id(spread)}  # the model whose random layers draw for the global batch
    assert [c for c in strategy.calls if c[0] == "evaluate"] == [("evaluate", 5, 8)] * 2  # sharded validation


def test_fit_shows_progress_only_where_the_strategy_says(capsys):
    x, y = _data()
    _model().fit(x, y, batch_size=10, epochs=1, verbose=2, distributed=StandInStrategy(rank=1, size=2))
    assert capsys.readouterr().out == ""  # not the root rank: verbose 0
    _model().fit(x, y, batch_size=10, epochs=1, verbose=2, distributed=StandInStrategy())
    assert capsys.readouterr().out.startswith("Epoch 1/1 - ")


def test_only_the_root_rank_writes_checkpoints(tmp_path):
    x, y = _data()
    _model().fit(x, y, batch_size=10, verbose=0, checkpoint_dir=tmp_path / "a", distributed=StandInStrategy(1, 2))
    assert not (tmp_path / "a" / "checkpoint.npz").exists()
    _model().fit(x, y, batch_size=10, verbose=0, checkpoint_dir=tmp_path / "b", distributed=StandInStrategy())
    assert (tmp_path / "b" / "checkpoint.npz").exists()

    def interrupt(step, logs=None):
        raise KeyboardInterrupt

    ctrl_c = mc.callbacks.LambdaCallback(on_train_batch_begin=interrupt)
    history = _model().fit(
        x, y, verbose=0, checkpoint_dir=tmp_path / "c", distributed=StandInStrategy(1, 2), callbacks=[ctrl_c]
    )
    assert history.stopped["reason"] == "interrupted" and not (tmp_path / "c" / "checkpoint.npz").exists()


def test_validation_sample_weights_are_refused_with_a_strategy():
    x, y = _data()
    w = np.ones(5)
    with pytest.raises(ValueError, match="^validation sample weights are not supported with distributed= training"):
        _model().fit(x, y, validation_data=(x[:5], y[:5], w), verbose=0, distributed=StandInStrategy())
    with pytest.raises(ValueError, match="^validation sample weights are not supported"):
        _model().fit(x, y, sample_weight=np.ones(20), validation_split=0.25, verbose=0, distributed=StandInStrategy())
    # without weights, validation data is fine, and evaluated by the strategy
    strategy = StandInStrategy()
    _model().fit(x, y, validation_data=(x[:5], y[:5]), verbose=0, distributed=strategy)
    assert ("evaluate", 5, 32) in strategy.calls


def test_a_resume_with_nothing_left_to_do_says_so_and_trains_nothing(tmp_path, capsys):
    x, y = _data()
    first = _model()
    trained = first.fit(x, y, batch_size=10, epochs=2, verbose=0, checkpoint_dir=tmp_path)
    again = _model()
    history = again.fit(x, y, batch_size=10, epochs=2, verbose=1, checkpoint_dir=tmp_path, resume=True)
    out = capsys.readouterr().out
    assert "the checkpoint already holds 2 epochs (epochs=2): nothing to do" in out
    assert history.history["loss"] == trained.history["loss"]  # the checkpoint's history, nothing added
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    _model().fit(x, y, batch_size=10, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    assert capsys.readouterr().out == ""  # verbose 0: quiet
    _model().fit(x, y, batch_size=10, epochs=3, verbose=1, checkpoint_dir=tmp_path, resume=True, overwrite=False)
    assert "nothing to do" not in capsys.readouterr().out  # one epoch left: trains it


def test_fit_defaults_are_batch_32_one_epoch_and_a_progress_bar():
    x, y = _data(66)
    history = _model().fit(x, y)
    assert history.params == {"verbose": 1, "epochs": 1, "steps": 3}  # 66 samples in batches of 32


def _bar_updates(monkeypatch):
    """As if on a terminal: the list that each refresh of the live bar appends (done, loss, accuracy) to."""
    seen = []
    monkeypatch.setattr(progress, "is_terminal", lambda file: True)
    monkeypatch.setattr(progress.Progress, "update", lambda self, done, loss, acc: seen.append((done, loss, acc)))
    return seen


def test_the_live_bar_is_refreshed_every_ten_steps_and_at_the_last(monkeypatch):
    seen, logs = _bar_updates(monkeypatch), []
    x, y = _data(25)
    logger = mc.callbacks.LambdaCallback(on_train_batch_end=lambda step, batch_logs: logs.append(dict(batch_logs)))
    _model().fit(x, y, batch_size=2, epochs=1, verbose=1, callbacks=[logger])
    assert [done for done, _, _ in seen] == [10, 13]  # 13 steps of 2
    for done, loss, acc in seen:  # the running means of the epoch so far, as the batch logs have them
        assert loss == pytest.approx(logs[done - 1]["loss"], rel=1e-12)
        assert acc == pytest.approx(logs[done - 1]["accuracy"], rel=1e-12)


def test_class_weight_weighs_each_sample_by_its_class():
    x, y = _data(30)
    classes = {0: 2.0, 1: 1.0, 2: 0.25}
    by_class, by_sample, plain = _model(), _model(), _model()
    by_class.fit(x, y, batch_size=8, epochs=2, verbose=0, class_weight=classes)
    by_sample.fit(x, y, batch_size=8, epochs=2, verbose=0, sample_weight=np.array([2.0, 1.0, 0.25])[y.argmax(1)])
    plain.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(by_class.get_weights(), by_sample.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, c) for a, c in zip(by_class.get_weights(), plain.get_weights()))


def test_a_weighted_fit_validates_with_the_weights_of_the_held_out_samples():
    x, y = _data(20)
    w = np.linspace(0.5, 2.0, 20)
    model = _model()
    history = model.fit(x, y, batch_size=5, epochs=1, verbose=0, sample_weight=w, validation_split=0.25)
    want = model.evaluate(x[15:], y[15:], sample_weight=w[15:], verbose=0)[0]
    unweighted = model.evaluate(x[15:], y[15:], verbose=0)[0]
    assert history.history["val_loss"][0] == pytest.approx(want, rel=1e-12) and want != pytest.approx(unweighted)
    # validation data with its own weights: those, not the training ones
    model = _model()
    w_val = np.array([3.0, 0.1, 1.0, 1.0, 0.5])
    history = model.fit(x, y, batch_size=5, verbose=0, sample_weight=w, validation_data=(x[:5], y[:5], w_val))
    want = model.evaluate(x[:5], y[:5], sample_weight=w_val, verbose=0)[0]
    assert history.history["val_loss"][0] == pytest.approx(want, rel=1e-12)


def test_bad_validation_inputs_are_named_as_the_validation_ones():
    x, y = _data(20)
    with pytest.raises(ValueError, match="^validation x has shape"):
        _model().fit(x, y, verbose=0, validation_data=(x[:5, :3], y[:5]))


@pytest.mark.parametrize(
    "kwargs,validation,samples",
    [({}, 0.0, 0), ({"validation_split": 0.25}, 0.25, 5), ("data", "validation_data", 7)],
)
def test_the_checkpoint_records_the_validation_setting_and_size(tmp_path, kwargs, validation, samples):
    x, y = _data(20)
    if kwargs == "data":
        kwargs = {"validation_data": (x[:7], y[:7])}
    history = _model().fit(x, y, batch_size=10, verbose=0, checkpoint_dir=tmp_path, **kwargs)
    assert history.settings["validation"] == validation and history.settings["validation_samples"] == samples


def test_fit_writes_its_lines_to_the_file_it_is_given(tmp_path, capsys):
    x, y = _data()
    out = io.StringIO()
    model = _model()
    model.fit(x, y, batch_size=10, epochs=1, verbose=2, file=out, checkpoint_dir=tmp_path)
    assert out.getvalue().startswith("Epoch 1/1 - ")
    model.fit(x, y, batch_size=10, epochs=1, verbose=2, file=out, checkpoint_dir=tmp_path, resume=True)
    assert out.getvalue().splitlines()[-1].endswith("nothing to do")
    assert capsys.readouterr().out == ""


def test_batch_callbacks_see_every_step_and_the_running_means_of_the_epoch():
    x, y = _data(20)
    begun, logs = [], []
    callback = mc.callbacks.LambdaCallback(
        on_train_batch_begin=lambda step, logs=None: begun.append(step),
        on_train_batch_end=lambda step, batch_logs: logs.append(dict(batch_logs)),
    )
    model = _model()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False, callbacks=[callback])
    assert begun == [0, 1, 2]
    # the first log is the first batch's loss, measured before its update; the last is the epoch's
    first = _model().evaluate(x[:8], y[:8], verbose=0)[0]
    assert logs[0]["loss"] == pytest.approx(first, rel=1e-12)
    assert logs[-1]["loss"] == pytest.approx(history.history["loss"][0], rel=1e-12)
    assert model.stop_training is False


def test_without_shuffle_fit_takes_the_batches_in_order():
    x, y = _data(20)
    fitted, by_hand = _model(), _model()
    fitted.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for lo in (0, 8, 16):
        by_hand.train_on_batch(x[lo : lo + 8], y[lo : lo + 8])
    for a, b in zip(fitted.get_weights(), by_hand.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_before_an_epochs_first_step_names_that_step():
    x, y = _data(20)

    def interrupt(epoch, logs=None):
        raise KeyboardInterrupt

    history = _model().fit(
        x, y, batch_size=8, verbose=0, callbacks=[mc.callbacks.LambdaCallback(on_epoch_begin=interrupt)]
    )
    assert history.stopped == {"reason": "interrupted", "epoch": 1, "step": 1}


def _poison_before_step(model, epoch, step):
    """A callback that makes one weight infinite just before ``step`` (0-based) of ``epoch``: that step's loss is
    the first non-finite one."""
    when = {}

    def begin_epoch(e, logs=None):
        when["epoch"] = e

    def begin_step(s, logs=None):
        if (when["epoch"], s) == (epoch, step):
            model.layers[0].params["kernel"][0, 0] = np.inf

    return mc.callbacks.LambdaCallback(on_epoch_begin=begin_epoch, on_train_batch_begin=begin_step)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_without_the_guard_a_non_finite_loss_goes_on_and_with_it_training_stops():
    x, y = _data(20)
    model = _model()
    history = model.fit(x, y, batch_size=4, verbose=0, nan_guard=False, callbacks=[_poison_before_step(model, 0, 3)])
    assert history.stopped is None and not np.isfinite(history.history["loss"][0])
    model, out = _model(), io.StringIO()
    history = model.fit(x, y, batch_size=4, verbose=0, file=out, callbacks=[_poison_before_step(model, 0, 3)])
    assert history.stopped["reason"] == "nan" and (history.stopped["epoch"], history.stopped["step"]) == (1, 4)
    assert not np.isfinite(history.stopped["loss"])
    # caught before its update, but the poisoned weight is not finite: the state of the last check (the start) is back
    assert "at epoch 1, step 4; the model keeps the weights of step 0 (the last state found finite)" in out.getvalue()


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_the_deferred_guard_names_the_step_of_the_first_bad_loss_after_an_initial_epoch():
    x, y = _data(20)
    model = _model()
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        initial_epoch=1,
        verbose=0,
        nan_guard="deferred",
        file=io.StringIO(),
        callbacks=[_poison_before_step(model, 1, 3)],
    )
    assert (history.stopped["epoch"], history.stopped["step"]) == (2, 4)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_the_state_guard_puts_back_the_state_of_its_last_check_and_names_its_step():
    x, y = _data(25)
    kept = {}

    def poison(step, logs):
        if step == 11:  # after the 12th step: the guard checks (every 4 steps) and keeps this state
            kept["weights"] = [w.copy() for w in model.get_weights()]
        if step == 12:  # the 13th step leaves a NaN weight that its loss does not show
            model.layers[1].params["bias"][0] = np.nan

    model = _model()
    out = io.StringIO()
    history = model.fit(
        x,
        y,
        batch_size=1,
        epochs=2,
        initial_epoch=1,
        verbose=0,
        shuffle=False,
        refresh_every=4,
        file=out,
        callbacks=[mc.callbacks.LambdaCallback(on_train_batch_end=poison)],
    )
    assert history.stopped["reason"] == "nan" and history.stopped["epoch"] == 2
    assert "keeps the weights of step 37 (the last state found finite)" in out.getvalue()  # 25 + 12
    for a, b in zip(model.get_weights(), kept["weights"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_nan_loss_from_finite_weights_keeps_the_weights_of_the_step_before():
    x, y = _data(20)
    model, out = _model(), io.StringIO()

    def overflow(step, logs=None):
        if step == 2:  # finite weights whose outputs overflow: the loss is not finite, the weights still are
            model.layers[0].params["kernel"][...] *= 1e200
            model.layers[1].params["kernel"][...] *= 1e200

    history = model.fit(
        x, y, batch_size=4, verbose=0, file=out, callbacks=[mc.callbacks.LambdaCallback(on_train_batch_begin=overflow)]
    )
    assert history.stopped["step"] == 3 and all(np.isfinite(w).all() for w in model.get_weights())
    assert "at epoch 1, step 3; the model keeps the weights of the step before" in out.getvalue()


def test_ctrl_c_in_an_epoch_saves_the_state_it_started_from_and_a_resume_redoes_it(tmp_path):
    x, y = _data(20)
    whole = _model()
    whole.fit(x, y, batch_size=4, epochs=2, verbose=0)
    stopper = {}

    def interrupt(step, logs=None):
        if stopper["epoch"] == 1 and step == 2:
            raise KeyboardInterrupt

    callbacks = [
        mc.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs=None: stopper.update(epoch=e)),
        mc.callbacks.LambdaCallback(on_train_batch_begin=interrupt),
    ]
    out = io.StringIO()
    history = _model().fit(
        x, y, batch_size=4, epochs=2, verbose=0, checkpoint_dir=tmp_path, file=out, callbacks=callbacks
    )
    assert history.stopped == {"reason": "interrupted", "epoch": 2, "step": 3}
    assert out.getvalue().strip() == (
        f"training interrupted at epoch 2, step 3; checkpoint written to {tmp_path} (1 epochs done): "
        "resume=True (--resume) redoes epoch 2 and continues"
    )
    resumed = _model()
    history = resumed.fit(x, y, batch_size=4, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    assert len(history.history["loss"]) == 2
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    out = io.StringIO()  # without a checkpoint folder the message says only where it stopped
    _model().fit(x, y, batch_size=4, epochs=2, verbose=0, file=out, callbacks=callbacks)
    assert out.getvalue().strip() == "training interrupted at epoch 2, step 3"


def test_the_seconds_recorded_are_the_epochs_own():
    x, y = _data(20)
    start = time.perf_counter()
    history = _model().fit(x, y, batch_size=4, epochs=2, verbose=0)
    took = time.perf_counter() - start
    assert all(0 < s <= took for s in history.history["seconds"])


def test_a_rank_with_an_empty_shard_adds_nothing_and_still_joins_the_allreduce():
    class EmptyShardStrategy(StandInStrategy):
        def average_gradients(self, model, loss, acc):
            self.calls.append(("average_gradients", loss))
            zero = model.backend.xp.zeros((), dtype=model.dtype)
            return zero, zero

    x, y = _data(4)
    model, strategy = _model(), EmptyShardStrategy()
    xb, yb = model.prepare_inputs(x), model.prepare_targets(y, 4)
    loss, acc = model.train_step(xb[:0], yb[:0], distributed=strategy)  # the shard of a batch smaller than the ranks
    assert strategy.calls == [("average_gradients", None)] and float(loss) == 0.0 and float(acc) == 0.0
    model.train_step(xb, yb, distributed=strategy)
    assert strategy.calls[-1][1] is not None  # a shard with samples passes its loss


def test_evaluate_updates_a_live_bar_as_it_goes(monkeypatch):
    seen = _bar_updates(monkeypatch)
    x, y = _data(66)
    _model().evaluate(x, y, batch_size=4)
    assert [done for done, _, _ in seen] == [10]  # 17 batches of 4, the bar refreshed every tenth


def test_the_module_level_fit_is_the_models_fit():
    x, y = _data(20)
    a, b = _model(), _model()
    ha = training.fit(a, x, y, batch_size=8, epochs=2, verbose=0)
    hb = b.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert ha.history["loss"] == hb.history["loss"]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_ctrl_c_after_an_epochs_checkpoint_keeps_that_checkpoint(tmp_path):
    x, y = _data(20)

    def interrupt(epoch, logs=None):
        raise KeyboardInterrupt

    out = io.StringIO()
    model = _model()
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=3,
        verbose=0,
        checkpoint_dir=tmp_path,
        file=out,
        callbacks=[mc.callbacks.LambdaCallback(on_epoch_end=interrupt)],
    )
    # the epoch's checkpoint is written before the callbacks run: it is the newer state, nothing more to save
    assert history.stopped["reason"] == "interrupted" and "checkpoint written" not in out.getvalue()
    assert load_checkpoint(_model(), tmp_path)["epochs_done"] == 1
