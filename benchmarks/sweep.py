"""Training and inference images per second of the tutorial's model against the batch size and against the thread
count, for every minicnn backend present and PyTorch, beside the machine's matrix-multiply ceiling.

    python -m benchmarks.sweep [--backends numpy,numba,cupy,torch] [--batches 16,32,...,4096]
                               [--threads 1,2,...] [--thread-batch 128] [--steps 5] [--contention K] [--out DIR]

Each point: one warm-up step, then ``--steps`` steps timed (training: forward, loss, backward, update; inference:
forward with dropout off), images/s = batch * steps / seconds. The thread sweep runs the CPU frameworks at
``--thread-batch`` with 1, 2, ... threads (Numba's kernels, BLAS, PyTorch's intra-op threads). The ceiling is a
2048^3 float32 product through NumPy's BLAS (all threads; CuPy's for the GPU) in GFLOP/s, turned into images/s by
the model's multiply-adds per image (2 flops each): forward for inference, forward + dW + dX (none for the first
convolution) for training. Writes ``sweep.json`` and a log-log ``sweep.png`` into ``--out``; the JSON also holds the
BLAS libraries as threadpoolctl sees them (the Numba kernels call SciPy's OpenBLAS, not NumPy's).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from benchmarks.common import machine_info, markdown_table, write_json
from benchmarks.contention import blas_libraries, blas_line, busy_processes
from benchmarks.kernels import tutorial_layer_specs

BATCHES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def model_flops():
    """(inference, training) flops per image of the tutorial: its products' multiply-adds, 2 flops each."""
    forward = sum(spec[3] for spec in tutorial_layer_specs(1))
    first_conv = tutorial_layer_specs(1)[0][3]
    return forward, 3 * forward - first_conv  # backward: dW and dX of each product, no dX for the first


def _data(batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((batch, 28, 28, 1), dtype=np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]


def _rate(fn, sync, batch, steps):
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return batch * steps / (time.perf_counter() - start)


def minicnn_rates(backend, batch, steps):
    """(training, inference) images/s of the tutorial on a minicnn backend."""
    from minicnn.train import tutorial_model

    model = tutorial_model(seed=0, backend=backend)
    x, y = _data(batch)
    xb, yb = model.prepare_inputs(x), model.prepare_targets(y, batch)
    model.start_epoch(0)
    sync = model.backend.synchronize
    train = _rate(lambda: model.train_step(xb, yb), sync, batch, steps)
    infer = _rate(lambda: model.forward(xb, training=False), sync, batch, steps)
    return train, infer


def torch_rates(batch, steps, device="cpu"):
    import torch
    from torch import nn

    from benchmarks.train import _torch_model

    torch.manual_seed(0)
    model = _torch_model("tutorial").to(device)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    x, y = _data(batch)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)
    yt = torch.from_numpy(y.argmax(1)).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xt), yt).backward()
        opt.step()

    def infer():
        with torch.no_grad():
            model(xt)

    model.train()
    train = _rate(step, sync, batch, steps)
    model.eval()
    return train, _rate(infer, sync, batch, steps)


def set_threads(framework, n):
    if framework.startswith("torch"):
        import torch

        torch.set_num_threads(n)
    else:
        import minicnn

        minicnn.set_num_threads(n)


def ceilings(frameworks):
    """GFLOP/s of a 2048^3 float32 product: NumPy's BLAS (all threads) and, with CuPy, the GPU's."""
    from benchmarks.kernels import matmul_ceiling

    found = {"cpu": matmul_ceiling("numpy", 4)}
    if "cupy" in frameworks:
        found["gpu"] = matmul_ceiling("cupy", 4)
    return found


def available(names):
    """The requested frameworks that can run here; with PyTorch and a GPU, PyTorch on the GPU too (torch-cuda)."""
    from importlib.util import find_spec

    from minicnn.backend import available_backends

    present = set(available_backends()) | ({"torch"} if find_spec("torch") is not None else set())
    chosen = [n for n in names if n in present]
    if "torch" in chosen and "cupy" in present:
        import torch

        if torch.cuda.is_available():
            chosen.append("torch-cuda")
    return chosen


def rates(framework, batch, steps):
    if framework == "torch":
        return torch_rates(batch, steps)
    if framework == "torch-cuda":
        return torch_rates(batch, steps, "cuda")
    return minicnn_rates(framework, batch, steps)


def plot(path, rows, ceiling, flops):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5), dpi=100)
    FigureCanvasAgg(fig)
    for col, (axis, title) in enumerate((("batch", "against the batch size"), ("threads", "against the threads"))):
        ax = fig.add_subplot(1, 2, col + 1)
        for i, fw in enumerate(sorted({r["framework"] for r in rows if r["sweep"] == axis})):
            pts = sorted(
                (r[axis], r["train_images_s"], r["infer_images_s"])
                for r in rows
                if r["sweep"] == axis and r["framework"] == fw
            )
            color = f"C{i}"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color, label=f"{fw} training")
            ax.plot([p[0] for p in pts], [p[2] for p in pts], "s--", color=color, label=f"{fw} inference")
        for j, (where, gflops) in enumerate(ceiling.items()):
            for k, (what, per_image) in enumerate(zip(("inference", "training"), flops)):
                ax.axhline(
                    gflops * 1e9 / per_image,
                    color="k",
                    linestyle=(":", "-.")[k],
                    alpha=0.3 + 0.3 * j,
                    label=f"{where} matmul ceiling, {what}",
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size" if axis == "batch" else "threads")
        ax.set_ylabel("images / s")
        ax.set_title(f"Tutorial model {title}")
        ax.legend(fontsize=6)
    fig.savefig(path, bbox_inches="tight")


def _ints(text):
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="numpy,numba,cupy,torch")
    parser.add_argument("--batches", type=_ints, default=list(BATCHES))
    parser.add_argument("--threads", type=_ints, default=None, help="thread counts (default 1 .. the cores)")
    parser.add_argument("--thread-batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--contention", type=int, default=0, help="K busy processes beside the sweep (0)")
    parser.add_argument("--out", default=os.path.join("benchmark-results", "sweep"))
    args = parser.parse_args(argv)
    from minicnn.backend.cores import available_cores

    threads = args.threads or list(range(1, available_cores() + 1))
    frameworks = available([b.strip() for b in args.backends.split(",") if b.strip()])
    os.makedirs(args.out, exist_ok=True)
    flops = model_flops()
    rows = []
    with busy_processes(args.contention):
        ceiling = ceilings(frameworks)
        for fw in frameworks:
            for batch in args.batches:
                print(f"{fw}: batch {batch} ...", flush=True)
                train, infer = rates(fw, batch, args.steps)
                rows.append(
                    {
                        "sweep": "batch",
                        "framework": fw,
                        "batch": batch,
                        "threads": None,
                        "train_images_s": train,
                        "infer_images_s": infer,
                    }
                )
            if fw in ("cupy", "torch-cuda"):
                continue
            for n in threads:
                set_threads(fw, n)
                train, infer = rates(fw, args.thread_batch, args.steps)
                rows.append(
                    {
                        "sweep": "threads",
                        "framework": fw,
                        "batch": args.thread_batch,
                        "threads": n,
                        "train_images_s": train,
                        "infer_images_s": infer,
                    }
                )
            set_threads(fw, max(threads))
    blas = blas_libraries()
    report = {
        "machine": machine_info(),
        "blas": blas,
        "contention": args.contention,
        "steps": args.steps,
        "flops_per_image": {"inference": flops[0], "training": flops[1]},
        "matmul_ceiling_gflops": ceiling,
        "ceiling_images_s": {
            k: {"inference": v * 1e9 / flops[0], "training": v * 1e9 / flops[1]} for k, v in ceiling.items()
        },
        "results": rows,
    }
    write_json(os.path.join(args.out, "sweep.json"), report)
    plot(os.path.join(args.out, "sweep.png"), rows, ceiling, flops)
    print(f"\nBLAS (threadpoolctl): {blas_line(blas)}")
    print(
        "matmul ceiling: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s = {v * 1e9 / flops[1]:.0f} training images/s" for k, v in ceiling.items())
    )
    print(markdown_table(rows, ["sweep", "framework", "batch", "threads", "train_images_s", "infer_images_s"]))
    print(f"\nwrote {args.out}/sweep.json and sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
