"""The training step as one captured graph, replayed for every full batch (CUDA graphs on the CuPy backend).

``model.cuda_graph = True`` (or ``MINICNN_CUDA_GRAPH=1``) asks ``fit`` for it on a backend that can capture
(``backend.graph_capture()`` returns a capturer; only CuPy's does). Per epoch, :class:`GraphStep`:

1. runs the first full batch eagerly (it allocates the layers' reused buffers and the optimizer's state, and
   loads every kernel, none of which may happen while capturing);
2. copies the next full batch into static input buffers and captures ``train_step`` on them: forward, loss,
   backward, the NaN guard's device flag and the optimizer's update, one graph;
3. for every later full batch: copies it into the static buffers and replays the graph; the host-side counters
   (the optimizer's iterations, the guard's step) advance as an eager step would advance them;
4. runs a partial last batch eagerly (another shape), after which the epoch's graph is not used again.

It falls back to eager steps for good, saying why in ``reason``, when the capture fails (a kernel reads a value
on the host, a library refuses capture) or when the optimizer's numbers change between steps (Adam's bias
correction is computed on the host: a replay would repeat the captured one). Replays compute what eager steps
compute: ``benchmarks/gpu_check.py`` compares them on a GPU, tests/test_graph_step.py with a stand-in capturer.
"""

from __future__ import annotations

import os


class GraphStep:
    """``step(xb, yb, check_finite, guard)`` with ``train_step``'s signature and results, replaying a captured
    graph for batches of ``batch_size`` (see the module's docstring). ``capturer``: ``capture(fn) -> outputs``
    records and performs ``fn()`` once; ``replay()`` performs it again."""

    def __init__(self, model, batch_size, capturer):
        self.model, self.batch_size, self.capturer = model, batch_size, capturer
        self.eager_steps = self.replays = 0
        self.outputs = None
        self.reason = None  # why the graph is off for good, or None
        self.static_x = self.static_y = self.hyper = None

    def __call__(self, xb, yb, check_finite=False, guard=None, distributed=None):
        model = self.model
        if (
            self.reason is not None
            or check_finite
            or distributed is not None
            or xb.shape[0] != self.batch_size
            or self.eager_steps == 0
        ):  # eager: warm-up, partial batch, immediate guard, MPI allreduce
            self.eager_steps += 1
            return model.train_step(xb, yb, check_finite=check_finite, guard=guard, distributed=distributed)
        if self.outputs is not None and model.optimizer.hyperparameters() != self.hyper:
            self.reason = "the optimizer's numbers change from step to step (computed on the host)"
            return self(xb, yb, check_finite, guard)
        xp = model.backend.xp
        if self.static_x is None:
            self.static_x, self.static_y = xp.empty_like(xb), xp.empty_like(yb)
        xp.copyto(self.static_x, xb)
        xp.copyto(self.static_y, yb)
        if self.outputs is None:
            self.hyper = model.optimizer.hyperparameters()
            try:
                self.outputs = self.capturer.capture(
                    lambda: model.train_step(self.static_x, self.static_y, guard=guard)
                )
            except Exception as err:  # any refusal to capture: eager from now on, saying why
                self.reason = f"capture failed: {type(err).__name__}: {err}"
                return self(xb, yb, check_finite, guard)
            return self.outputs
        iterations, guard_step = model.optimizer.iterations, None if guard is None else guard.step
        self.capturer.replay()
        model.optimizer.iterations = iterations + 1  # what the eager step's host side would have done
        if guard is not None:
            guard.step = guard_step + 1
        self.replays += 1
        return self.outputs


def graph_step_for(model, batch_size):
    """A :class:`GraphStep` when asked for (``model.cuda_graph`` True, or ``MINICNN_CUDA_GRAPH=1``) and the model's
    backend can capture, else the model's own ``train_step``."""
    wanted = getattr(model, "cuda_graph", None)
    if wanted is None:
        wanted = os.environ.get("MINICNN_CUDA_GRAPH", "") == "1"
    capture = getattr(model.backend, "graph_capture", None)
    capturer = capture() if wanted and capture is not None else None
    return model.train_step if capturer is None else GraphStep(model, batch_size, capturer)
