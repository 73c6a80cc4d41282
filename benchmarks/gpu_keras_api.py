"""The Keras-style training API on the GPU, for benchmarks/gpu_check.py: the same small model trained on the CuPy
and NumPy backends with identical initial weights must agree (float32 rounding apart) when

- ``fit`` weighs the samples (``sample_weight``) and the validation set (``validation_data=(x, y, w)``),
- ``class_weight`` is given, and a callback reads the batch logs (the running loss, read from the device),
- ``evaluate(sample_weight=, return_dict=True)`` and ``predict_on_batch`` run on the trained model.

Each check records PASS with the largest relative difference, or FAIL.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-4  # relative, float32 on two backends whose sums run in different orders


def _model(backend):
    import minicnn as mc
    from minicnn import layers

    model = mc.Sequential(
        [
            layers.Conv2D(4, (3, 3), activation="relu", input_shape=(12, 12, 1)),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ],
        seed=0,
        backend=backend,
    )
    model.compile(optimizer=mc.optimizers.SGD(0.1))
    return model


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-6, np.abs(a) + np.abs(b))))


def keras_api_checks(record):
    from minicnn.callbacks import LambdaCallback

    rng = np.random.default_rng(1)
    x = rng.random((64, 12, 12, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    w = rng.uniform(0, 2, 64).astype(np.float32)
    runs = {}
    for backend in ("numpy", "cupy"):
        model, batch_losses = _model(backend), []
        spy = LambdaCallback(on_train_batch_end=lambda batch, logs, seen=batch_losses: seen.append(logs["loss"]))
        hist = model.fit(
            x[:48],
            y[:48],
            batch_size=16,
            epochs=2,
            verbose=0,
            sample_weight=w[:48],
            validation_data=(x[48:], y[48:], w[48:]),
            callbacks=[spy],
        )
        model.fit(x[:48], y[:48], batch_size=16, epochs=1, verbose=0, class_weight={0: 0.5, 2: 2.0})
        scores = model.evaluate(x, y, verbose=0, sample_weight=w, return_dict=True)
        runs[backend] = (hist.history, batch_losses, model.get_weights(), scores, model.predict_on_batch(x))
    (h_cpu, b_cpu, w_cpu, s_cpu, p_cpu), (h_gpu, b_gpu, w_gpu, s_gpu, p_gpu) = runs["numpy"], runs["cupy"]
    for name, a, b in [
        (
            "weighted fit: history",
            [h_cpu[k] for k in sorted(h_cpu) if k != "seconds"],
            [h_gpu[k] for k in sorted(h_gpu) if k != "seconds"],
        ),
        ("weighted fit: batch logs", b_cpu, b_gpu),
        (
            "weighted fit: weights",
            np.concatenate([v.ravel() for v in w_cpu]),
            np.concatenate([v.ravel() for v in w_gpu]),
        ),
        ("evaluate(sample_weight=)", [s_cpu["loss"], s_cpu["accuracy"]], [s_gpu["loss"], s_gpu["accuracy"]]),
        ("predict_on_batch", p_cpu, p_gpu),
    ]:
        error = _rel(a, b)
        record(
            f"keras API on cupy: {name}",
            "PASS" if error < TOLERANCE else "FAIL",
            f"max relative difference {error:.1e} (tolerance {TOLERANCE:.0e})",
        )
