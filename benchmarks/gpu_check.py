"""One script that checks and times the CuPy backend on a real GPU. Run it once where there is a GPU:

    python -m benchmarks.gpu_check [--out DIR] [--data-dir MNIST_DIR] [--cpu-epoch-seconds S]

Sections (each one reports and goes on if it fails): the environment; every GPU kernel against the NumPy
reference on random inputs; float64 gradient checks on the GPU; the whole model CPU (Numba) vs GPU on identical
weights (outputs, gradients, test-set argmax); each kernel's forward/backward time on GPU vs Numba CPU; the
notebook notebooks/cpu_vs_gpu_kernels.ipynb with its CuPy branch; one
epoch of the tutorial on MNIST on the GPU (and in PyTorch on the same GPU when it is installed); the distributed
allreduce paths (one-rank NCCL, MPI with GPU buffers; benchmarks/gpu_distributed.py); the CUDA graph step against
the eager one, and one step's time four ways (benchmarks/gpu_graphs.py). Writes ``gpu_check.json`` and
``gpu_check.png`` and prints a summary table last. Sized to end within 8 minutes on an H200.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

import numpy as np

from benchmarks.common import machine_info, markdown_table, time_call, write_json
from minicnn.cli import plain_text

SUMMARY: list[dict] = []
REPORT: dict = {"sections": {}}


def record(check, result, detail="", **extra):
    SUMMARY.append({"check": check, "result": result, "detail": detail})
    REPORT["sections"].setdefault(check, {}).update({"result": result, "detail": detail, **extra})
    print(f"[{result}] {check}: {detail}", flush=True)


def section(name):
    def wrap(fn):
        def run(*args, **kwargs):
            started = time.perf_counter()
            print(f"\n== {name}", flush=True)
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # report and go on: one failure must not cost the rest of the run
                traceback.print_exc()
                record(name, "ERROR", f"{type(err).__name__}: {err}")
            finally:
                print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)

        return run

    return wrap


@section("environment")
def environment():
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    env = {
        "gpu": props["name"].decode(),
        "driver": cupy.cuda.runtime.driverGetVersion(),
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cupy": cupy.__version__,
        "gpu_memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
        **machine_info(),
    }
    try:
        import torch

        env["torch"] = torch.__version__
    except ImportError:
        env["torch"] = None
    REPORT["environment"] = env
    for k, v in env.items():
        print(f"   {k}: {v}")
    record(
        "environment",
        "info",
        f"{env['gpu']}, CUDA runtime {env['cuda_runtime']}, driver {env['driver']}, CuPy {env['cupy']}",
    )


GEOMETRIES = [
    (2, 7, 7, 1, (3, 3), (1, 1), "valid"),
    (3, 9, 6, 2, (5, 5), (2, 2), "same"),
    (1, 8, 5, 3, (2, 3), (2, 1), "same"),
    (2, 6, 7, 3, (3, 2), (3, 2), "valid"),
    (2, 11, 13, 4, (3, 3), (2, 2), "same"),
    (8, 28, 28, 1, (5, 5), (1, 1), "valid"),
    (8, 12, 12, 32, (5, 5), (1, 1), "valid"),
    (8, 24, 24, 32, (2, 2), (2, 2), "valid"),
]


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@section("kernels vs NumPy reference")
def kernels_vs_reference():
    from minicnn.backend import get_backend, make_window

    gpu, ref = get_backend("cupy"), get_backend("numpy")
    rng = np.random.default_rng(0)
    worst = {}
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        for n, h, w, c, k, s, pad in GEOMETRIES:
            win = make_window(h, w, k, s, pad)
            x = rng.standard_normal((n, h, w, c)).astype(dtype)
            x[0, :2, :2, 0] = 1.5  # a tie in a pooling window
            cols = ref.im2col(x, win)
            g = rng.standard_normal(cols.shape).astype(dtype)
            y, arg = ref.maxpool_forward(x, win)
            dy = rng.standard_normal(y.shape).astype(dtype)
            gy, garg = gpu.maxpool_forward(gpu.asarray(x), win)
            errs = {
                "im2col": _rel(gpu.to_numpy(gpu.im2col(gpu.asarray(x), win)), cols),
                "col2im": _rel(gpu.to_numpy(gpu.col2im(gpu.asarray(g), x.shape, win)), ref.col2im(g, x.shape, win)),
                "maxpool_forward": _rel(gpu.to_numpy(gy), y) + float((gpu.to_numpy(garg) != arg).sum()),
                "maxpool_backward": _rel(
                    gpu.to_numpy(gpu.maxpool_backward(gpu.asarray(dy), garg, x.shape, win)),
                    ref.maxpool_backward(dy, arg, x.shape, win),
                ),
                "avgpool_forward": _rel(
                    gpu.to_numpy(gpu.avgpool_forward(gpu.asarray(x), win)), ref.avgpool_forward(x, win)
                ),
                "avgpool_backward": _rel(
                    gpu.to_numpy(gpu.avgpool_backward(gpu.asarray(dy), x.shape, win)),
                    ref.avgpool_backward(dy, x.shape, win),
                ),
            }
            z = rng.standard_normal((37, 11)).astype(dtype)
            b = rng.standard_normal(11).astype(dtype)
            yr = ref.bias_relu(z.copy(), b)
            errs["bias_relu"] = _rel(gpu.to_numpy(gpu.bias_relu(gpu.asarray(z), gpu.asarray(b))), yr)
            errs["relu_backward"] = _rel(
                gpu.to_numpy(gpu.relu_backward(gpu.asarray(z), gpu.asarray(yr))), ref.relu_backward(z, yr)
            )
            u = rng.random((50, 7)).astype(dtype)
            errs["dropout_mask"] = _rel(gpu.to_numpy(gpu.dropout_mask(gpu.asarray(u), 0.3)), ref.dropout_mask(u, 0.3))
            for name, err in errs.items():
                key = f"{name} {np.dtype(dtype).name}"
                worst[key] = max(worst.get(key, 0.0), err)
        bad = {k: v for k, v in worst.items() if k.endswith(np.dtype(dtype).name) and v > tol}
        record(
            f"kernels {np.dtype(dtype).name} == reference",
            "PASS" if not bad else "FAIL",
            f"{len(GEOMETRIES)} geometries x {len(errs)} kernels, worst rel. err "
            f"{max(v for k, v in worst.items() if k.endswith(np.dtype(dtype).name)):.1e} (tol {tol:.0e})"
            + (f"; failing: {bad}" if bad else ""),
        )
    REPORT["kernel_errors"] = worst


BATCHNORM_SHAPES = [(1, 1), (7, 3), (130, 17), (5000, 3), (128, 128), (128 * 24 * 24, 32)]  # (M rows, C channels)


@section("batch normalization kernels vs NumPy reference")
def batchnorm_vs_reference():
    """Forward (training and inference) and backward (training and inference) on the GPU against the reference run
    in float64 on the same inputs (the truth: the float32 reference's own running sums drift by 1e-5 at 73,728 rows);
    errors relative to the largest value; then a float64 gradient check of the layer in training mode."""
    from minicnn import layers
    from minicnn.backend import get_backend
    from minicnn.gradcheck import check_layer

    gpu, ref = get_backend("cupy"), get_backend("numpy")
    rng = np.random.default_rng(0)
    worst = {}
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        for m, c in BATCHNORM_SHAPES:
            for affine in (True, False):
                x = (3 * rng.standard_normal((m, c)) + 2).astype(dtype)
                dy = rng.standard_normal((m, c)).astype(dtype)
                g, b = (
                    (rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype))
                    if affine
                    else (None, None)
                )
                up = [None if v is None else v.astype(np.float64) for v in (x, dy, g, b)]
                on_gpu = [None if v is None else gpu.asarray(v) for v in (x, dy, g, b)]
                got = gpu.batchnorm_forward_training(on_gpu[0], on_gpu[2], on_gpu[3], 1e-3)
                want = ref.batchnorm_forward_training(up[0], up[2], up[3], 1e-3)
                errs = {
                    f"forward training {k}": _rel(gpu.to_numpy(a), w)
                    for k, a, w in zip(("y", "xhat", "mean", "var", "inv_std"), got, want)
                }
                mean, var = want[2].astype(dtype), want[3].astype(dtype)
                got_i = gpu.batchnorm_forward_inference(
                    on_gpu[0], gpu.asarray(mean), gpu.asarray(var), on_gpu[2], on_gpu[3], 1e-3
                )
                want_i = ref.batchnorm_forward_inference(
                    up[0], mean.astype(np.float64), var.astype(np.float64), up[2], up[3], 1e-3
                )
                errs["forward inference y"] = _rel(gpu.to_numpy(got_i[0]), want_i[0])
                xhat, inv_std = want[1].astype(dtype), want[4].astype(dtype)
                for training in (True, False):
                    got_b = gpu.batchnorm_backward(
                        on_gpu[1], gpu.asarray(xhat), on_gpu[2], gpu.asarray(inv_std), training
                    )
                    want_b = ref.batchnorm_backward(
                        up[1], xhat.astype(np.float64), up[2], inv_std.astype(np.float64), training
                    )
                    for k, a, w in zip(("dx", "dgamma", "dbeta"), got_b, want_b):
                        errs[f"backward {'training' if training else 'inference'} {k}"] = _rel(gpu.to_numpy(a), w)
                for name, err in errs.items():
                    key = f"{name} {np.dtype(dtype).name}"
                    worst[key] = max(worst.get(key, 0.0), err)
        name = np.dtype(dtype).name
        mine = {k: v for k, v in worst.items() if k.endswith(name)}
        bad = {k: v for k, v in mine.items() if v > tol}
        record(
            f"batchnorm kernels {name} == reference",
            "PASS" if not bad else "FAIL",
            f"{len(BATCHNORM_SHAPES)} shapes x (affine, none), worst rel. err {max(mine.values()):.1e} "
            f"(tol {tol:.0e})" + (f"; failing: {bad}" if bad else ""),
        )
    REPORT["batchnorm_kernel_errors"] = worst
    grad_err = max(
        check_layer(
            layers.BatchNormalization(gamma_initializer="glorot_uniform"),
            shape,
            mode="direction",
            training=True,
            backend="cupy",
        ).max_error
        for shape in ((4, 5, 3, 6), (9, 7))
    )
    record(
        "batchnorm float64 gradcheck (GPU, training)",
        "PASS" if grad_err <= 1e-6 else "FAIL",
        f"NHWC and (N, features), along a random direction: rel. err {grad_err:.1e} (tol 1e-6)",
    )


@section("fused Adam/AdamW kernels vs the plain rule")
def adam_vs_rule():
    """10 steps of Adam, AMSGrad and AdamW on the GPU (one fused kernel per weight) against the NumPy rule on the
    host, a learning rate changed between steps, a gated (skipped) step; CUDA may fuse multiply-adds, so the bound
    is relative, not bitwise."""
    from minicnn.optimizers import Adam, AdamW

    gpu = get_backend_checked("cupy")
    rng = np.random.default_rng(0)
    worst = {}
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        for name, make in (
            ("adam", lambda: Adam(0.01)),
            ("amsgrad", lambda: Adam(0.01, amsgrad=True)),
            ("adamw", lambda: AdamW(0.01, weight_decay=0.1)),
        ):
            w = [rng.standard_normal(s).astype(dtype) for s in ((5, 5, 3, 32), (32,), (1001,))]
            gs = [
                [rng.standard_normal(p.shape).astype(dtype) * (100.0 if k == 0 else 1.0) for p in w] for k in range(10)
            ]
            host, dev = make(), make()
            wd = [gpu.asarray(p) for p in w]
            for k, g in enumerate(gs):
                if k == 5:
                    host.learning_rate = dev.learning_rate = 0.003
                host.apply(w, g)
                dev.apply(wd, [gpu.asarray(a) for a in g], backend=gpu)
            dev.apply(wd, [gpu.asarray(a) for a in gs[0]], gate=gpu.xp.zeros((), dtype=bool), backend=gpu)
            key = f"{name} {np.dtype(dtype).name}"
            worst[key] = max(_rel(gpu.to_numpy(b), a) for a, b in zip(w, wd))
        bad = {k: v for k, v in worst.items() if k.endswith(np.dtype(dtype).name) and v > tol}
        record(
            f"fused Adam {np.dtype(dtype).name} == rule",
            "PASS" if not bad else "FAIL",
            f"worst rel. err {max(v for k, v in worst.items() if k.endswith(np.dtype(dtype).name)):.1e} "
            f"(tol {tol:.0e})" + (f"; failing: {bad}" if bad else ""),
        )
    REPORT["adam_errors"] = worst


@section("whole-model files from the GPU")
def model_files_from_gpu(backend="cupy"):
    """A model trained a step on the GPU saved to .keras and exported to ONNX; reopened on the CPU, both predict
    what the GPU model predicts (float32 on both sides, sums in another order: 1e-5)."""
    import tempfile

    import minicnn as mc
    from minicnn import layers

    model = mc.Sequential(
        [
            layers.Conv2D(4, 3, padding="same", input_shape=(10, 10, 2)),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.AveragePooling2D(),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ],
        seed=0,
        backend=backend,
    )
    model.compile(optimizer="adam", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 10, 10, 2), dtype=np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    model.train_on_batch(x, y)
    ours = model.predict(x)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(os.path.join(tmp, "m.keras"))
        worst = float(
            np.abs(mc.models.load_model(os.path.join(tmp, "m.keras"), backend="numpy").predict(x) - ours).max()
        )
        detail = f".keras reopened on the CPU: max abs diff {worst:.1e}"
        try:
            import onnxruntime

            model.export(os.path.join(tmp, "m.onnx"))
            session = onnxruntime.InferenceSession(os.path.join(tmp, "m.onnx"), providers=["CPUExecutionProvider"])
            onnx_worst = float(np.abs(session.run(None, {"input": x})[0] - ours).max())
            worst, detail = max(worst, onnx_worst), detail + f"; ONNX Runtime: {onnx_worst:.1e}"
        except ImportError:
            detail += "; onnx/onnxruntime not installed: ONNX not checked"
    record("model files from the GPU", "PASS" if worst <= 1e-5 else "FAIL", detail + " (tol 1e-5)")


def get_backend_checked(name):
    from minicnn.backend import get_backend

    backend = get_backend(name)
    if backend.fused_update("adam") is None:
        raise RuntimeError(f"backend {name!r} offers no fused Adam kernel")
    return backend


@section("float64 gradient checks on the GPU")
def gradient_checks():
    from minicnn import layers
    from minicnn.gradcheck import check_layer, check_model
    from minicnn.train import tutorial_model

    cases = [
        (layers.Conv2D(3, (3, 3), strides=2, padding="same", activation="relu"), (2, 7, 6, 3)),
        (layers.Conv2D(2, (2, 3), activation="tanh"), (2, 7, 5, 1)),
        (layers.MaxPooling2D((3, 3), strides=2, padding="same"), (2, 7, 6, 3)),
        (layers.AveragePooling2D((3, 3), strides=2, padding="same"), (2, 7, 6, 3)),
        (layers.GlobalAveragePooling2D(), (2, 5, 4, 3)),
        (layers.GlobalMaxPooling2D(keepdims=True), (2, 5, 4, 3)),
        (layers.ZeroPadding2D(((1, 2), (0, 3))), (2, 3, 5, 2)),
        (layers.Reshape((-1, 6)), (2, 4, 3, 2)),
        (layers.Dense(4, activation="softmax"), (3, 5)),
    ]
    worst = 0.0
    for layer, shape in cases:
        for mode in ("elementwise", "direction"):
            worst = max(worst, check_layer(layer, shape, mode=mode, backend="cupy").max_error)
    model = tutorial_model(seed=3, backend="cupy", dtype="float64")
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 1, (3, 28, 28, 1)), np.eye(10)[[1, 7, 3]]
    model_err = check_model(model, x, y, mode="direction").max_error
    ok = worst <= 1e-6 and model_err <= 1e-6
    record(
        "float64 gradcheck (GPU)",
        "PASS" if ok else "FAIL",
        f"{len(cases)} layers x 2 modes worst rel. err {worst:.1e}; tutorial model (direction) {model_err:.1e}; "
        f"tol 1e-6",
    )


@section("the trace (timed runs restore the step's state) and the interactive page on the GPU")
def trace_and_page(out):
    from minicnn.page import write_page
    from minicnn.recipes import build_model
    from minicnn.trace import trace_step

    rng = np.random.default_rng(0)
    x, y = rng.random((8, 28, 28, 1), dtype=np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, 8)]
    once, many = (build_model("fashion_bn", seed=0, backend="cupy") for _ in range(2))
    a, b = trace_step(once, x, y, repeats=0), trace_step(many, x, y, repeats=3)
    same = a.loss == b.loss and all(
        np.array_equal(once.backend.to_numpy(u), many.backend.to_numpy(v)) for u, v in zip(once.weights, many.weights)
    )
    page = write_page(build_model("tutorial", seed=0, backend="cupy"), x, y, os.path.join(out, "index.html"))
    size = os.path.getsize(page)
    record(
        "trace + page (GPU)",
        "PASS" if same and size > 10_000 else "FAIL",
        f"3 timed runs leave the state of one step: {same}; page {size / 1e6:.1f} MB; conv2d forward median "
        f"{b.forward[0]['ms']:.3f} ms",
    )


def _load_mnist(data_dir):
    from minicnn.datasets import mnist
    from minicnn.train import prepare

    (xtr, ytr), (xte, yte) = mnist.load_data(data_dir)
    return prepare(xtr, ytr), prepare(xte, yte), yte


@section("whole model: CPU (Numba) vs GPU on identical weights")
def cpu_vs_gpu(data):
    from minicnn.train import tutorial_model

    (xtr, ytr), (xte, yte1h), yte = data
    cpu, gpu = tutorial_model(seed=5, backend="numba"), tutorial_model(seed=5, backend="cupy")
    gpu.set_weights(cpu.get_weights())
    p_cpu, p_gpu = cpu.predict(xte, batch_size=500), gpu.predict(xte, batch_size=500)
    differ = int((p_cpu.argmax(1) != p_gpu.argmax(1)).sum())
    out_err = _rel(p_gpu, p_cpu)
    _, g_cpu = cpu.compute_gradients(xtr[:128], ytr[:128])
    _, g_gpu = gpu.compute_gradients(xtr[:128], ytr[:128])
    grad_err = max(_rel(a, b) for a, b in zip(g_gpu, g_cpu))
    # a trained model too: argmax agreement matters most where the model is confident
    for _ in range(30):
        cpu.train_on_batch(xtr[:128], ytr[:128])
    gpu.set_weights(cpu.get_weights())
    differ_trained = int((cpu.predict_classes(xte, 500) != gpu.predict_classes(xte, 500)).sum())
    ok = differ == 0 and differ_trained == 0 and out_err < 1e-4 and grad_err < 1e-4
    record(
        "CPU vs GPU model",
        "PASS" if ok else "FAIL",
        f"test-set argmax differs on {differ} (initial weights) and {differ_trained} (after 30 steps) of "
        f"{len(xte)}; outputs rel. err {out_err:.1e}; gradients rel. err {grad_err:.1e} (float32)",
    )


@section("kernel timings: GPU vs Numba CPU")
def kernel_timings():
    import cupy

    from minicnn import layers
    from minicnn.backend import get_backend

    rows = []
    sync = cupy.cuda.get_current_stream().synchronize
    shapes = [
        ("conv2d", lambda: layers.Conv2D(32, (5, 5), activation="relu"), (128, 28, 28, 1)),
        ("conv2d, as trained (no dX)", lambda: layers.Conv2D(32, (5, 5), activation="relu"), (128, 28, 28, 1)),
        ("conv2d_1", lambda: layers.Conv2D(64, (5, 5), activation="relu"), (128, 12, 12, 32)),
        ("max_pooling2d", lambda: layers.MaxPooling2D((2, 2)), (128, 24, 24, 32)),
        ("max_pooling2d_1", lambda: layers.MaxPooling2D((2, 2)), (128, 8, 8, 64)),
        ("average_pooling2d", lambda: layers.AveragePooling2D((2, 2)), (128, 24, 24, 32)),
        (
            "average_pooling2d 3x3 s2 same",
            lambda: layers.AveragePooling2D((3, 3), strides=2, padding="same"),
            (128, 24, 24, 32),
        ),
        ("dense", lambda: layers.Dense(120, activation="relu"), (128, 1024)),
        ("batch_normalization", lambda: layers.BatchNormalization(), (128, 24, 24, 32)),
    ]
    rng = np.random.default_rng(0)
    for name, make, shape in shapes:
        row = {"layer": name, "input": str(shape)}
        for be_name, s in (("numba", lambda: None), ("cupy", sync)):
            be = get_backend(be_name)
            layer = make()
            layer.build(shape[1:], be, np.float32, rng)
            layer.reuse_buffers = True  # as inside a model
            if "no dX" in name:
                layer.compute_input_gradient = False  # the first layer in training
            x = be.asarray(rng.standard_normal(shape).astype(np.float32))
            y = layer.forward(x, training=True)
            g = be.asarray(rng.standard_normal(y.shape).astype(np.float32))
            repeats = 10 if be_name == "numba" else 50
            fwd = time_call(lambda layer=layer, x=x: layer.forward(x, training=True), s, repeats=repeats)
            bwd = time_call(lambda layer=layer, g=g: layer.backward(g), s, repeats=repeats)
            row[f"{be_name} fwd ms"], row[f"{be_name} bwd ms"] = 1e3 * fwd, 1e3 * bwd
        row["speed-up fwd"] = row["numba fwd ms"] / row["cupy fwd ms"]
        row["speed-up bwd"] = row["numba bwd ms"] / row["cupy bwd ms"]
        rows.append(row)
    table = markdown_table(
        rows,
        [
            "layer",
            "input",
            "numba fwd ms",
            "cupy fwd ms",
            "speed-up fwd",
            "numba bwd ms",
            "cupy bwd ms",
            "speed-up bwd",
        ],
    )
    print(table)
    REPORT["kernel_timings"] = rows
    record(
        "kernel timings",
        "info",
        "per layer at batch 128: "
        + ", ".join(f"{r['layer']} x{r['speed-up fwd']:.0f}/x{r['speed-up bwd']:.0f}" for r in rows)
        + " (fwd/bwd GPU speed-up)",
    )


@section("one epoch of the tutorial on the GPU")
def train_epoch(data, cpu_epoch_seconds):
    from minicnn.train import tutorial_model

    (xtr, ytr), (xte, yte1h), yte = data
    model = tutorial_model(seed=42, backend="cupy")
    hist = model.fit(xtr, ytr, batch_size=128, epochs=2, verbose=2, validation_split=0.2)
    secs = hist.history["seconds"]
    # the NaN guard costs a few tiny kernels a step (deferred on a GPU): time an epoch without it
    unguarded = model.fit(xtr, ytr, batch_size=128, epochs=1, verbose=0, validation_split=0.2, nan_guard=False)
    REPORT["gpu_epoch_without_nan_guard_s"] = unguarded.history["seconds"][0]
    test_loss, test_acc = model.evaluate(xte, yte1h, batch_size=128, verbose=0)
    REPORT["gpu_epoch"] = {"seconds": secs, "history": hist.history, "test_loss": test_loss, "test_accuracy": test_acc}
    detail = (
        f"epoch 1 {secs[0]:.2f} s (with kernel compilation), epoch 2 {secs[1]:.2f} s "
        f"({unguarded.history['seconds'][0]:.2f} s with nan_guard=False); val_acc after 2 epochs "
        f"{hist.history['val_accuracy'][-1]:.4f}, test acc after 3 {test_acc:.4f}"
    )
    if cpu_epoch_seconds:
        detail += f"; {cpu_epoch_seconds / secs[1]:.1f}x faster than Numba CPU's {cpu_epoch_seconds:.1f} s"
    record("minicnn GPU epoch", "PASS" if test_acc > 0.97 else "FAIL", detail)
    return secs[1]


@section("the same epoch in PyTorch on the same GPU")
def torch_epoch(data, minicnn_seconds):
    import torch
    from torch import nn

    from benchmarks.torch_models import torch_model

    (xtr, ytr), _, _ = data
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = torch_model().to(dev)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
    n_train = int(len(xtr) * 0.8)
    x = torch.tensor(xtr[:n_train].transpose(0, 3, 1, 2), device=dev)
    y = torch.tensor(ytr[:n_train].argmax(1), device=dev)
    xv = torch.tensor(xtr[n_train:].transpose(0, 3, 1, 2), device=dev)
    yv = torch.tensor(ytr[n_train:].argmax(1), device=dev)
    loss_fn = nn.CrossEntropyLoss()
    secs = []
    for _ in range(2):
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n_train, device=dev)
        total = torch.zeros((), device=dev)
        for s in range(0, n_train, 128):
            idx = order[s : s + 128]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        model.eval()
        with torch.no_grad():
            correct = sum((model(xv[s : s + 128]).argmax(1) == yv[s : s + 128]).sum() for s in range(0, len(xv), 128))
        float(total), float(correct)
        torch.cuda.synchronize()
        secs.append(time.perf_counter() - start)
    REPORT["torch_epoch"] = {"seconds": secs, "torch": torch.__version__, "val_accuracy": float(correct) / len(xv)}
    ratio = minicnn_seconds / secs[1] if minicnn_seconds else float("nan")
    record(
        "PyTorch GPU epoch",
        "PASS" if ratio <= 1.5 else "FAIL",
        f"PyTorch {torch.__version__} eager: epoch 2 {secs[1]:.2f} s (val acc {float(correct) / len(xv):.4f}); "
        f"minicnn/PyTorch = {ratio:.2f} (target <= 1.5)",
    )


@section("checkpoints, weight files and the NaN guard on the GPU")
def robustness_on_gpu(folder):
    """A small CNN on CuPy: a checkpoint resumed equals an uninterrupted run; a NaN planted in a weight is put back to
    the last finite state by the state guard; a weights file with a NaN is refused before anything changes."""
    import minicnn as mc
    from minicnn import layers

    def model(seed=0):
        m = mc.Sequential(
            [
                layers.Conv2D(4, (3, 3), strides=2, activation="relu", input_shape=(28, 28, 1)),
                layers.MaxPooling2D((2, 2)),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ],
            seed=seed,
            backend="cupy",
        )
        m.compile()
        return m

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64, 28, 28, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)]
    straight = model()
    straight.fit(x, y, batch_size=16, epochs=2, verbose=0)
    ck = os.path.join(folder, "gpu_ck")
    model().fit(x, y, batch_size=16, epochs=1, verbose=0, checkpoint_dir=ck, overwrite=True)
    resumed = model()
    resumed.fit(x, y, batch_size=16, epochs=2, verbose=0, checkpoint_dir=ck, resume=True)
    same = all(np.array_equal(a, b) for a, b in zip(straight.get_weights(), resumed.get_weights()))
    record("GPU checkpoint resume == straight run", "PASS" if same else "FAIL", "bitwise" if same else "differs")

    class Poison(mc.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            if step == 2:
                self.model.weights[0][...] = np.nan

    poisoned = model()
    hist = poisoned.fit(x, y, batch_size=16, epochs=1, verbose=0, refresh_every=1, callbacks=[Poison()])
    finite = all(np.isfinite(w).all() for w in poisoned.get_weights())
    record(
        "GPU state guard restores the last finite state",
        "PASS" if hist.stopped and finite else "FAIL",
        f"stopped {hist.stopped}, weights finite: {finite}",
    )
    path = os.path.join(folder, "gpu_nan.npz")
    straight.save_weights(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["dense/bias"] = arrays["dense/bias"] * np.nan
    np.savez(path, **arrays)
    before = resumed.get_weights()
    try:
        resumed.load_weights(path)
        refused = False
    except ValueError:
        refused = all(np.array_equal(a, b) for a, b in zip(before, resumed.get_weights()))
    record("GPU load_weights refuses NaN, all or nothing", "PASS" if refused else "FAIL", path)


@section("notebook cpu_vs_gpu_kernels")
def kernels_notebook():
    """notebooks/cpu_vs_gpu_kernels.ipynb from a clean kernel: here its CuPy branch runs (CuPy's results against the
    NumPy reference, asserted in the notebook; the timings), which CPU-only CI cannot run."""
    import nbclient
    import nbformat

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    nb = nbformat.read(os.path.join(root, "notebooks", "cpu_vs_gpu_kernels.ipynb"), as_version=4)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": os.path.join(root, "notebooks")}}
    ).execute()
    text = "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []))
    ratios = [line for line in text.splitlines() if line.startswith("cupy against numpy")]
    record(
        "notebook cpu_vs_gpu_kernels",
        "PASS" if ratios else "FAIL",
        ratios[0] if ratios else "the notebook ran without its CuPy branch",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=os.environ.get("OUT") or "benchmark-results")
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST files (default: the loader's search)")
    parser.add_argument(
        "--cpu-epoch-seconds",
        type=float,
        default=None,
        help="a Numba CPU epoch measured elsewhere (python -m benchmarks.train), for the ratio",
    )
    args = parser.parse_args(argv)
    try:  # without a GPU every section would fail alike: say it once
        from minicnn.backend import get_backend

        get_backend("cupy")
    except (ImportError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    environment()
    kernels_vs_reference()
    batchnorm_vs_reference()
    adam_vs_rule()
    model_files_from_gpu()
    gradient_checks()
    robustness_on_gpu(args.out)
    trace_and_page(args.out)
    data = None
    try:
        data = _load_mnist(args.data_dir)
    except Exception as err:
        record("MNIST", "ERROR", str(err))
    if data is not None:
        cpu_vs_gpu(data)
    kernel_timings()
    kernels_notebook()
    if data is not None:
        seconds = train_epoch(data, args.cpu_epoch_seconds)
        torch_epoch(data, seconds)
    from benchmarks.gpu_distributed import distributed_checks

    section("distributed: NCCL and MPI with GPU buffers")(distributed_checks)(record)
    from benchmarks import gpu_graphs  # the CUDA graph step, step timings four ways, gpu_check.png

    section("CUDA graph step vs eager step")(gpu_graphs.graph_vs_eager)(record, REPORT)
    section("one training step: minicnn eager/graph, PyTorch eager/graph")(gpu_graphs.step_timings)(record, REPORT)
    section("gpu_check.png")(gpu_graphs.plot)(REPORT, args.out)
    from benchmarks.gpu_keras_api import keras_api_checks

    section("Keras's fit arguments and callbacks on the GPU")(keras_api_checks)(record)
    REPORT["summary"] = SUMMARY
    REPORT["total_seconds"] = time.perf_counter() - started
    write_json(os.path.join(args.out, "gpu_check.json"), REPORT)
    print(f"\nwrote {os.path.join(args.out, 'gpu_check.json')} ({REPORT['total_seconds']:.0f} s in all)\n")
    print(markdown_table(SUMMARY, ["check", "result", "detail"]))
    return 0 if all(r["result"] in ("PASS", "info") for r in SUMMARY) else 1


if __name__ == "__main__":
    sys.exit(main())
