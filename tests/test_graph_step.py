"""The captured training step (CUDA graphs on CuPy), its backend-independent logic checked on the CPU: a stand-in
capturer replays the step by calling it again on the same static buffers, so a replayed fit must equal an eager one
bit for bit; failures to capture and per-step optimizer numbers fall back to eager steps."""

import numpy as np
import pytest

import minicnn as mc
from minicnn import layers
from minicnn.graph_step import GraphStep, graph_step_for


class ReplayByCalling:
    """A CUDA graph's stand-in: ``capture`` performs ``fn`` once and keeps its outputs; ``replay`` performs it again
    and writes its results into those same arrays (a graph writes the same addresses at every launch)."""

    def __init__(self, fail=None):
        self.fail, self.replays = fail, 0

    def capture(self, fn):
        if self.fail:
            raise self.fail
        self.fn = fn
        self.outputs = tuple(np.array(v) for v in fn())
        return self.outputs

    def replay(self):
        for kept, new in zip(self.outputs, self.fn()):
            kept[...] = new
        self.replays += 1


def _model(optimizer="adadelta"):
    model = mc.Sequential(
        [
            layers.Conv2D(4, (3, 3), activation="relu", input_shape=(10, 10, 1)),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        seed=5,
        backend="numpy",
    )
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def _data(n=36):
    rng = np.random.default_rng(2)
    return rng.random((n, 10, 10, 1), dtype=np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]


def _steps(model, step, x, y, batch=8):
    model.start_epoch(0)
    return [[float(v) for v in step(x[i : i + batch], y[i : i + batch])] for i in range(0, len(x), batch)]


def _same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def test_replayed_steps_equal_eager_steps_bit_for_bit():
    x, y = _data()
    eager, graphed = _model(), _model()
    capturer = ReplayByCalling()
    step = GraphStep(graphed, 8, capturer)
    assert _steps(graphed, step, x, y) == _steps(eager, eager.train_step, x, y)
    assert _same_weights(eager, graphed)
    # 5 batches: the first eager (warm-up), the second captured, two replays, the partial last one eager
    assert (step.eager_steps, step.replays, capturer.replays, step.reason) == (2, 2, 2, None)
    assert graphed.optimizer.iterations == eager.optimizer.iterations == 5


def test_fit_with_a_graph_equals_fit_without(monkeypatch):
    x, y = _data(52)  # 42 training samples: 5 full batches of 8 and a partial one
    eager, graphed = _model(), _model()
    capturers = []
    monkeypatch.setattr(
        graphed.backend, "graph_capture", lambda: capturers.append(ReplayByCalling()) or capturers[-1], raising=False
    )
    graphed.cuda_graph = True
    h_graph = graphed.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.2, nan_guard="deferred")
    h_eager = eager.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.2, nan_guard="deferred")
    assert h_graph.history["loss"] == h_eager.history["loss"]
    assert h_graph.history["val_accuracy"] == h_eager.history["val_accuracy"]
    assert _same_weights(eager, graphed)
    assert len(capturers) == 2 and all(c.replays == 3 for c in capturers)  # eager, captured, 3 replays, partial


def test_a_failed_capture_falls_back_to_eager_and_says_why():
    x, y = _data()
    eager, graphed = _model(), _model()
    step = GraphStep(graphed, 8, ReplayByCalling(fail=NotImplementedError("cuBLAS during capture")))
    assert _steps(graphed, step, x, y) == _steps(eager, eager.train_step, x, y)
    assert _same_weights(eager, graphed)
    assert step.reason == "capture failed: NotImplementedError: cuBLAS during capture" and step.eager_steps == 5


def test_per_step_optimizer_numbers_fall_back_to_eager():
    x, y = _data()
    eager, graphed = _model("adam"), _model("adam")  # Adam's bias correction changes its numbers every step
    step = GraphStep(graphed, 8, ReplayByCalling())
    assert _steps(graphed, step, x, y) == _steps(eager, eager.train_step, x, y)
    assert _same_weights(eager, graphed)
    assert "change from step to step" in step.reason and step.replays == 0


def test_graph_step_is_opt_in_and_needs_a_capturing_backend(monkeypatch):
    model = _model()
    monkeypatch.delenv("MINICNN_CUDA_GRAPH", raising=False)
    assert graph_step_for(model, 8) == model.train_step  # not asked for
    model.cuda_graph = True
    assert graph_step_for(model, 8) == model.train_step  # the NumPy backend cannot capture
    monkeypatch.setattr(model.backend, "graph_capture", ReplayByCalling, raising=False)
    assert isinstance(graph_step_for(model, 8), GraphStep)
    model.cuda_graph = None
    monkeypatch.setenv("MINICNN_CUDA_GRAPH", "1")
    assert isinstance(graph_step_for(model, 8), GraphStep)


def test_the_deferred_guard_counts_steps_on_the_device():
    from minicnn.nan_guard import DeferredNanGuard, NonFiniteLoss

    guard = DeferredNanGuard(np, first_step=10)
    for loss in (1.0, 2.0, np.inf, 3.0):
        guard.observe(np.float32(loss))
    assert int(guard.step_on_device) == guard.step == 14
    with pytest.raises(NonFiniteLoss) as err:
        guard.check()
    assert err.value.step == 12
