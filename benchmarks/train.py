"""Seconds per epoch of a recipe (the tutorial by default) for each minicnn backend and, in the same run, Keras and
PyTorch with the same model.

    python -m benchmarks.train [--steps N] [--frameworks minicnn-numba,minicnn-numpy,keras,torch] [--out DIR]
                               [--recipe tutorial|fashion_bn] [--contention K]

An epoch is the tutorial's: 375 training steps of batch 128 (48,000 images) plus validation on 12,000 images,
with the same model, data, batch size and thread count everywhere. Each framework runs in its own process (so
thread pools and memory do not mix), warms up, then is timed:

- default: two epochs; the second is reported (the first pays for compilation and caches);
- ``--steps N``: N training steps and N validation batches after 3 warm-up steps, extrapolated to 375 + 94.

Reports per framework: seconds per epoch, ms per training step, peak resident memory of its process, and the
ratio to minicnn's best backend. ``--contention K`` runs K busy processes (one core each) beside every framework,
as on a shared machine. The BLAS libraries are reported as threadpoolctl sees them (the Numba kernels call SciPy's
OpenBLAS, not NumPy's). Keras's ``fit`` time is split into compute (its batches and validation, timed by
a callback) and the rest (the idle waits the team saw inside ``fit``). Prints a markdown table, writes
``train.json`` and ``train.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import bar_chart, machine_info, markdown_table, write_json
from benchmarks.contention import blas_libraries, blas_line, busy_processes
from benchmarks.torch_models import torch_model
from minicnn.cli import plain_text

TRAIN_STEPS, VAL_BATCHES, BATCH = 375, 94, 128
FRAMEWORKS = ("minicnn-numpy", "minicnn-numba", "minicnn-cupy", "keras", "torch")


def load_data(n_train, n_val, dataset="mnist"):
    """The first n_train + n_val training images of ``dataset`` (float32 NHWC, one-hot), or random ones without it."""
    n = n_train + n_val
    try:
        from minicnn.datasets import fashion_mnist, mnist
        from minicnn.train import prepare

        (x, y), _ = (mnist if dataset == "mnist" else fashion_mnist).load_data(os.environ.get("BENCH_DATA_DIR"))
        x, y = prepare(x[:n], y[:n])
        source = dataset
    except Exception:
        rng = np.random.default_rng(0)
        x = rng.random((n, 28, 28, 1), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
        source = f"random ({dataset} not found: point MINICNN_DATA, or BENCH_DATA_DIR, at its folder)"
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], source


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- workers: each times one framework and prints one JSON line ----------------------------------------


def _minicnn_worker(backend, x, y, xv, yv, steps, recipe):
    from minicnn.recipes import build_model
    from minicnn.training import evaluate_arrays

    model = build_model(recipe, seed=0, backend=backend)
    be = model.backend
    xb, yb = model.prepare_inputs(x), model.prepare_targets(y, len(x))
    xvb, yvb = model.prepare_inputs(xv), model.prepare_targets(yv, len(xv))
    n = len(x)

    def train(n_steps):
        order = be.asarray(model.rng.permutation(n))
        total = be.xp.zeros((), dtype=model.dtype)
        for s in range(n_steps):
            idx = order[(s * BATCH) % n : (s * BATCH) % n + BATCH]
            loss, _ = model.train_step(xb[idx], yb[idx])
            total += loss
        float(total)
        be.synchronize()

    def validate():
        loss, _ = evaluate_arrays(model, xvb, yvb, BATCH)
        float(loss)
        be.synchronize()

    result = _time_phases(train, validate, steps)
    if be.name == "numba":  # the threading layer, its wait policy and thread count
        from minicnn.backend.numba.threads import pool_info

        result["numba_threads"] = pool_info()
    return result


def _time_phases(train, validate, steps):
    """Warm up, then time training steps and validation; returns seconds per step, validation seconds."""
    t0 = time.perf_counter()
    train(3)
    validate()
    warmup = time.perf_counter() - t0
    repeats = 1 if steps else 2
    n_steps = steps or TRAIN_STEPS
    results = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        train(n_steps)
        t1 = time.perf_counter()
        validate()
        t2 = time.perf_counter()
        results.append(((t1 - t0) / n_steps, t2 - t1))
    step_s, val_s = results[-1]
    return {"step_s": step_s, "val_s": val_s, "warmup_s": warmup}


def _torch_worker(x, y, xv, yv, steps, threads, recipe):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch_model(recipe)
    if recipe == "tutorial":
        opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y.argmax(1))
    xvt = torch.from_numpy(np.ascontiguousarray(xv.transpose(0, 3, 1, 2)))
    yvt = torch.from_numpy(yv.argmax(1))
    n = len(xt)

    def train(n_steps):
        model.train()
        order = torch.randperm(n)
        for s in range(n_steps):
            idx = order[(s * BATCH) % n : (s * BATCH) % n + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    def validate():
        model.eval()
        with torch.no_grad():
            for s in range(0, len(xvt), BATCH):
                loss_fn(model(xvt[s : s + BATCH]), yvt[s : s + BATCH])

    result = _time_phases(train, validate, steps)
    result["version"] = torch.__version__
    return result


def keras_model(recipe):
    """The recipe's model in Keras 3, compiled as minicnn compiles it (the same layers, defaults and optimizer)."""
    import keras

    L = keras.layers
    if recipe == "tutorial":
        model = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                L.Conv2D(32, (5, 5), activation="relu"),
                L.MaxPooling2D(),
                L.Conv2D(64, (5, 5), activation="relu"),
                L.MaxPooling2D(),
                L.Dropout(0.2),
                L.Flatten(),
                L.Dense(120, activation="relu"),
                L.Dropout(0.5),
                L.Dense(84, activation="relu"),
                L.Dense(10, activation="softmax"),
            ]
        )
        optimizer = keras.optimizers.Adadelta(1.0, rho=0.95, epsilon=1e-7)
    else:

        def block(filters):
            return [L.Conv2D(filters, 3, padding="same", use_bias=False), L.BatchNormalization(), L.Activation("relu")]

        model = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                *block(32),
                *block(32),
                L.MaxPooling2D(),
                L.Dropout(0.25),
                *block(64),
                *block(64),
                L.MaxPooling2D(),
                L.Dropout(0.25),
                L.Flatten(),
                L.Dense(128, use_bias=False),
                L.BatchNormalization(),
                L.Activation("relu"),
                L.Dropout(0.5),
                L.Dense(10, activation="softmax"),
            ]
        )
        optimizer = keras.optimizers.Adam(0.001)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def _keras_worker(x, y, xv, yv, steps, threads, recipe):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    keras.utils.set_random_seed(0)
    model = keras_model(recipe)

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.batches.append(time.perf_counter() - self.t)

        def on_test_begin(self, logs=None):
            self.v = time.perf_counter()

        def on_test_end(self, logs=None):
            self.val.append(time.perf_counter() - self.v)

    clock = Clock()
    n_train = steps * BATCH if steps else len(x)
    n_val = min(len(xv), (steps or VAL_BATCHES) * BATCH)
    model.fit(
        x[: 3 * BATCH], y[: 3 * BATCH], batch_size=BATCH, epochs=1, verbose=0, validation_data=(xv[:BATCH], yv[:BATCH])
    )  # warm-up: tracing and compilation
    epochs = 1 if steps else 2
    walls = []
    for _ in range(epochs):
        clock.batches, clock.val = [], []
        t0 = time.perf_counter()
        model.fit(
            x[:n_train],
            y[:n_train],
            batch_size=BATCH,
            epochs=1,
            verbose=0,
            validation_data=(xv[:n_val], yv[:n_val]),
            callbacks=[clock],
        )
        walls.append(time.perf_counter() - t0)
    n_steps = len(clock.batches)
    return {
        "step_s": float(np.sum(clock.batches)) / n_steps,
        "val_s": float(np.sum(clock.val)),
        "fit_wall_s": walls[-1],
        "fit_steps": n_steps,
        "fit_val_images": n_val,
        "version": f"keras {keras.__version__}, tensorflow {tf.__version__}",
    }


def worker(name, steps, threads, recipe="tutorial"):
    from minicnn.recipes import get_recipe

    n_train = (steps + 3) * BATCH if steps else TRAIN_STEPS * BATCH
    n_val = min(steps, VAL_BATCHES) * BATCH if steps else 12000
    x, y, xv, yv, source = load_data(n_train, n_val, get_recipe(recipe).dataset)
    if name.startswith("minicnn-"):
        result = _minicnn_worker(name.split("-", 1)[1], x, y, xv, yv, steps, recipe)
        import minicnn

        result["version"] = f"minicnn {minicnn.__version__}"
    elif name == "torch":
        result = _torch_worker(x, y, xv, yv, steps, threads, recipe)
    elif name == "keras":
        result = _keras_worker(x, y, xv, yv, steps, threads, recipe)
    else:
        raise ValueError(f"unknown framework {name!r}; known: {', '.join(FRAMEWORKS)}")
    val_scale = 12000 / len(xv)
    result["val_epoch_s"] = result["val_s"] * val_scale
    result["epoch_s"] = result["step_s"] * TRAIN_STEPS + result["val_epoch_s"]
    if "fit_wall_s" in result:  # Keras: the whole fit, scaled like its compute, for the idle part
        compute = result["step_s"] * result["fit_steps"] + result["val_s"]
        result["fit_epoch_s"] = result["epoch_s"] * result["fit_wall_s"] / compute
    result["peak_rss_mib"] = peak_rss_mib()
    result["data"] = source
    print("RESULT " + json.dumps(result), flush=True)


def _available(name):
    """Whether a framework can run here, without importing it (TensorFlow's import alone costs seconds)."""
    from importlib.util import find_spec

    needed = {"keras": ("keras", "tensorflow"), "torch": ("torch",), "minicnn-cupy": ("cupy",)}.get(name, ())
    return all(find_spec(module) is not None for module in needed)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=0, help="time N steps and extrapolate (0: two full epochs)")
    parser.add_argument(
        "--frameworks",
        default=",".join(FRAMEWORKS),
        help=f"comma-separated, from {', '.join(FRAMEWORKS)} (absent ones are skipped; "
        "NAME@N runs one with N threads, e.g. minicnn-numba@1)",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every framework")
    parser.add_argument(
        "--recipe",
        default="tutorial",
        choices=["tutorial", "fashion_bn"],
        help="the model and data (minicnn/recipes.py): tutorial on MNIST, fashion_bn on Fashion-MNIST",
    )
    parser.add_argument("--out", default=os.path.join("benchmark-results", "train"))
    parser.add_argument(
        "--contention", type=int, default=0, help="run K busy processes (a spin loop each) beside every framework (0)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 0 or args.contention < 0:
        parser.error("--steps and --contention must be >= 0")
    if args.worker:
        worker(args.worker, args.steps, args.threads, args.recipe)
        return 0
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for spec in [f.strip() for f in args.frameworks.split(",") if f.strip()]:
        name, _, count = spec.partition("@")  # minicnn-numba@1: that framework with 1 thread
        if name not in FRAMEWORKS or (count and not count.isdigit()):
            parser.error(f"unknown framework {spec!r}; known: {', '.join(FRAMEWORKS)} (NAME@N: with N threads)")
        if not _available(name):
            print(f"{spec}: not installed here, skipped", flush=True)
            continue
        threads = str(int(count) if count else args.threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "NUMBA_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        print(
            f"{spec}: running ..." + (f" beside {args.contention} busy processes" if args.contention else ""),
            flush=True,
        )
        with busy_processes(args.contention):
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.train",
                    "--worker",
                    name,
                    "--steps",
                    str(args.steps),
                    "--threads",
                    threads,
                    "--recipe",
                    args.recipe,
                ],
                capture_output=True,
                text=True,
                env=env,
            )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(f"{spec}: FAILED\n{proc.stderr[-3000:]}", flush=True)
            rows.append({"framework": spec, "error": proc.stderr[-500:]})
            continue
        result = {"framework": spec, "threads": int(threads), **json.loads(line[len("RESULT ") :])}
        print(f"{spec}: {result['epoch_s']:.1f} s/epoch, {1e3 * result['step_s']:.1f} ms/step", flush=True)
        rows.append(result)
    done = [r for r in rows if "epoch_s" in r]
    mini = [r["epoch_s"] for r in done if r["framework"].startswith("minicnn")]
    best = min(mini) if mini else None
    for r in done:
        r["ms_per_step"] = 1e3 * r["step_s"]
        r["vs_minicnn_best"] = r["epoch_s"] / best if best else None
    table = markdown_table(
        done,
        [
            "framework",
            "threads",
            "epoch_s",
            "ms_per_step",
            "val_epoch_s",
            "fit_epoch_s",
            "peak_rss_mib",
            "vs_minicnn_best",
            "version",
        ],
    )
    report = {
        "machine": machine_info(),
        "blas": blas_libraries(),
        "contention": args.contention,
        "threads": args.threads,
        "recipe": args.recipe,
        "steps": args.steps or "2 full epochs",
        "results": rows,
    }
    write_json(os.path.join(args.out, "train.json"), report)
    if done:
        bar_chart(
            os.path.join(args.out, "train.png"),
            [r["framework"] for r in done],
            [r["epoch_s"] for r in done],
            f"Seconds per {args.recipe} epoch (lower is better)",
            "seconds per epoch",
        )
    m = report["machine"]
    data = ", ".join(sorted({r.get("data", "?") for r in done})) or "?"
    print(
        f"\nmachine: {m.get('cpu')}, {m.get('cpu_count')} cores, {args.threads} threads, BLAS {m.get('blas')}; "
        f"{'extrapolated from ' + str(args.steps) + ' steps' if args.steps else 'second of two full epochs'}; "
        f"recipe: {args.recipe}; data: {data}"
        + (f"; {args.contention} busy processes beside each framework" if args.contention else "")
    )
    print(f"BLAS (threadpoolctl): {blas_line(report['blas'])}")
    print(table)
    print(f"\nwrote {args.out}/train.json and train.png")
    return 0 if len(done) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
