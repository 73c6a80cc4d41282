"""gpu_check's CUDA-graph sections: the captured training step against the eager one, and the time of one training
step of the tutorial at batch 128 four ways (minicnn eager, minicnn CUDA graph, PyTorch eager, PyTorch CUDA graph
through ``torch.cuda.graph``), drawn into ``gpu_check.png``. Each function reports through ``record`` and leaves
its figures in ``report``; gpu_check runs each as a section (a failure is reported, the run goes on)."""

from __future__ import annotations

import os
import time

import numpy as np

BATCH, STEPS = 128, 6


def _batches(n_batches, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n_batches * BATCH, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(x))]
    return x, y


def _graph_step(model):
    from minicnn.backend.cuda_graph import CupyGraphCapture
    from minicnn.graph_step import GraphStep

    return GraphStep(model, BATCH, CupyGraphCapture())


def graph_vs_eager(record, report):
    """The same STEPS training steps (dropout on, Adadelta) eagerly and through the graph: losses and weights."""
    from minicnn.nan_guard import DeferredNanGuard
    from minicnn.train import tutorial_model

    x, y = _batches(STEPS)
    results = {}
    for name in ("eager", "graph"):
        model = tutorial_model(seed=42, backend="cupy")
        xb, yb = model.prepare_inputs(x), model.prepare_targets(y, len(x))
        guard = DeferredNanGuard(model.backend.xp)
        step = model.train_step if name == "eager" else _graph_step(model)
        model.start_epoch(0)
        losses = [float(step(xb[i : i + BATCH], yb[i : i + BATCH], guard=guard)[0]) for i in range(0, len(x), BATCH)]
        guard.check()
        results[name] = (losses, model.get_weights(), step)
    (l_e, w_e, _), (l_g, w_g, graph) = results["eager"], results["graph"]
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(w_e, w_g))
    loss_diff = max(abs(a - b) for a, b in zip(l_e, l_g))
    report["cuda_graph_vs_eager"] = {
        "weights_max_abs_diff": diff,
        "loss_max_abs_diff": loss_diff,
        "replays": graph.replays,
        "reason": graph.reason,
        "losses": [l_e, l_g],
    }
    ok = graph.reason is None and graph.replays == STEPS - 2 and diff <= 1e-6 and loss_diff <= 1e-6
    record(
        "CUDA graph step = eager step",
        "PASS" if ok else "FAIL",
        f"{STEPS} steps, {graph.replays} replays; max |dW| {diff:.2e}, max |dloss| {loss_diff:.2e}"
        + (f"; fell back to eager: {graph.reason}" if graph.reason else ""),
    )


def _median_step(fn, sync, n=60, warmup=5):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        times.append((time.perf_counter() - start) / n)
    return float(np.median(times))


def minicnn_steps(report):
    """Seconds per training step, eager and replayed, batch 128."""
    from minicnn.train import tutorial_model

    x, y = _batches(4)
    out = {}
    for name in ("minicnn eager", "minicnn CUDA graph"):
        model = tutorial_model(seed=42, backend="cupy")
        xb, yb = model.prepare_inputs(x), model.prepare_targets(y, len(x))
        step = model.train_step if name == "minicnn eager" else _graph_step(model)
        model.start_epoch(0)
        counter = [0]

        def one(step=step, xb=xb, yb=yb, counter=counter):
            i = (counter[0] % 4) * BATCH
            counter[0] += 1
            step(xb[i : i + BATCH], yb[i : i + BATCH])

        out[name] = _median_step(one, model.backend.synchronize)
        if name != "minicnn eager" and step.reason:
            out[name + " (fell back: " + step.reason[:60] + ")"] = out.pop(name)
    report.setdefault("step_seconds", {}).update(out)
    return out


def torch_steps(report):
    """PyTorch's step, eager and captured whole with ``torch.cuda.graph`` (static input, optimizer inside)."""
    import torch
    from torch import nn

    from benchmarks.torch_models import torch_model

    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = torch_model().to(dev)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(4 * BATCH, 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (4 * BATCH,), device=dev)
    out = {}
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
    counter = [0]

    def eager():
        i = (counter[0] % 4) * BATCH
        counter[0] += 1
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[i : i + BATCH]), y[i : i + BATCH]).backward()
        opt.step()

    out["PyTorch eager"] = _median_step(eager, torch.cuda.synchronize)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7, capturable=True)
    static_x, static_y = x[:BATCH].clone(), y[:BATCH].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs asks
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(static_x), static_y).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = loss_fn(model(static_x), static_y)
        static_loss.backward()
        opt.step()

    def replay():
        i = (counter[0] % 4) * BATCH
        counter[0] += 1
        static_x.copy_(x[i : i + BATCH])
        static_y.copy_(y[i : i + BATCH])
        graph.replay()

    out["PyTorch CUDA graph"] = _median_step(replay, torch.cuda.synchronize)
    report.setdefault("step_seconds", {}).update(out)
    return out


def step_timings(record, report):
    """The four step times, and minicnn's against PyTorch's (targets: graph <= 1.0x PyTorch's graph)."""
    times = minicnn_steps(report)
    try:
        times.update(torch_steps(report))
    except Exception as err:  # PyTorch absent or its capture refused: report minicnn's figures alone
        record("PyTorch step timings", "info", f"{type(err).__name__}: {err}")
    detail = ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in times.items())
    ratio = None
    if "minicnn CUDA graph" in times and "PyTorch CUDA graph" in times:
        ratio = times["minicnn CUDA graph"] / times["PyTorch CUDA graph"]
        detail += f"; minicnn graph / PyTorch graph = {ratio:.2f} (target <= 1.0)"
    record("training step at batch 128", "info" if ratio is None else ("PASS" if ratio <= 1.0 else "FAIL"), detail)


def plot(report, out_dir):
    """gpu_check.png: the step times (and epoch times when measured), log scale."""
    from benchmarks.common import bar_chart

    rows = {f"step: {k}": 1e3 * v for k, v in report.get("step_seconds", {}).items()}
    if "gpu_epoch" in report:
        rows["epoch: minicnn (2nd)"] = 1e3 * report["gpu_epoch"]["seconds"][-1]
    if "torch_epoch" in report:
        rows["epoch: PyTorch eager (2nd)"] = 1e3 * report["torch_epoch"]["seconds"][-1]
    if rows:
        path = os.path.join(out_dir, "gpu_check.png")
        bar_chart(path, list(rows), list(rows.values()), "GPU: tutorial at batch 128 (lower is better)", "milliseconds")
        print(f"wrote {path}")
