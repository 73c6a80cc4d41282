"""Adam, AdamW and RMSprop against Keras 3 (TensorFlow backend), step by step, on the numpy and numba backends
(and cupy where there is a GPU); the fused kernels against the plain rule; the learning rate changed during
training; bad arguments. Skips the Keras comparisons when Keras is absent, unless MINICNN_REQUIRE_KERAS=1.

Tolerances. float32: relative 1e-5 (absolute 1e-7 near zero): Keras computes the step size lr_t in float32 with
TensorFlow's pow, we compute it in float64 on the host and round it once; the measured gap is a few 1e-7.
float64: relative 1e-12, and the hyper-parameters are numbers that float32 holds exactly (learning rate 2**-7,
beta_1 0.875, beta_2 1 - 2**-10, rho 0.875, weight decay 0.25): Keras keeps its learning rate in a float32
variable and casts beta_1, beta_2 through float32 before its pow, so with 0.001 or 0.999 it computes another
number than the one written (beta_2 = 0.999 moves lr_t by 6e-6 relative); with these values both sides compute
the same rule in float64 and agree to the last bits (0 difference measured).
"""

import numpy as np
import pytest
from conftest import KERAS_MISSING, import_keras

import minicnn as mc
from minicnn import layers
from minicnn.optimizers import OPTIMIZERS, Adam, AdamW, RMSprop

keras, _ = import_keras()

needs_keras = pytest.mark.skipif(keras is None, reason=KERAS_MISSING)

EXACT = dict(learning_rate=2**-7)  # float32-exact numbers (see the module docstring)
EXACT_BETAS = dict(EXACT, beta_1=0.875, beta_2=1 - 2**-10)
CASES = {  # name -> (Keras's kwargs == ours for float32, for float64)
    "adam": ("Adam", dict(learning_rate=0.01), EXACT_BETAS),
    "adam_amsgrad": ("Adam", dict(learning_rate=0.01, amsgrad=True), dict(EXACT_BETAS, amsgrad=True)),
    "adamw": ("AdamW", dict(learning_rate=0.01, weight_decay=0.25), dict(EXACT_BETAS, weight_decay=0.25)),
    "adamw_amsgrad": (
        "AdamW",
        dict(learning_rate=0.01, amsgrad=True),  # the default weight_decay
        dict(EXACT_BETAS, amsgrad=True, weight_decay=0.25),
    ),
    "rmsprop": ("RMSprop", dict(learning_rate=0.01), EXACT),
    "rmsprop_momentum": ("RMSprop", dict(learning_rate=0.01, momentum=0.5), dict(EXACT, rho=0.875, momentum=0.5)),
    "rmsprop_centered": ("RMSprop", dict(learning_rate=0.01, centered=True), dict(EXACT, rho=0.875, centered=True)),
    "rmsprop_both": (
        "RMSprop",
        dict(learning_rate=0.01, momentum=0.9, centered=True),
        dict(EXACT, momentum=0.5, centered=True),
    ),
}
OURS = {"Adam": Adam, "AdamW": AdamW, "RMSprop": RMSprop}
TOL = {np.float32: dict(rtol=1e-5, atol=1e-7), np.float64: dict(rtol=1e-12, atol=0)}


def backend_or_skip(name):
    try:
        return mc.get_backend(name)
    except Exception as err:  # noqa: BLE001 - any failure to create the backend means "not here"
        pytest.skip(f"backend {name!r} unavailable here: {err}")


def problem(dtype, seed=0, steps=10):
    """Two weights (a kernel and a bias) and ``steps`` gradients for each; the first gradient is 100 times larger,
    so that v shrinks afterwards and AMSGrad's max(v_hat, v) differs from v."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    grads = [
        [rng.standard_normal(w.shape).astype(dtype) * (100.0 if k == 0 else 1.0) for w in weights] for k in range(steps)
    ]
    return weights, grads


def run_ours(make, weights, grads, backend, lr_schedule=None):
    opt, be = make(), mc.get_backend(backend) if isinstance(backend, str) else backend
    w = [be.asarray(a.copy()) for a in weights]
    history = []
    for k, g in enumerate(grads):
        if lr_schedule and k in lr_schedule:
            opt.learning_rate = lr_schedule[k]
        opt.apply(w, [be.asarray(a) for a in g], backend=be)
        history.append([be.to_numpy(a).copy() for a in w])
    return history


def run_keras(class_name, kwargs, weights, grads, lr_schedule=None):
    opt = getattr(keras.optimizers, class_name)(**kwargs)
    variables = [keras.Variable(w.copy(), dtype=w.dtype.name) for w in weights]
    history = []
    for k, g in enumerate(grads):
        if lr_schedule and k in lr_schedule:
            opt.learning_rate = lr_schedule[k]
        opt.apply(g, variables)
        history.append([v.numpy().copy() for v in variables])
    return history


def assert_same_history(ours, theirs, dtype):
    worst = 0.0
    for step, (a, b) in enumerate(zip(ours, theirs), 1):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, err_msg=f"step {step}", **TOL[dtype])
            worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-30))))
    return worst


@needs_keras
@pytest.mark.parametrize("backend", ["numpy", "numba", "cupy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_weights_match_keras_after_each_of_10_steps(case, dtype, backend):
    be = backend_or_skip(backend)
    class_name, kw32, kw64 = CASES[case]
    kwargs = kw32 if dtype == np.float32 else kw64
    weights, grads = problem(dtype)
    ours = run_ours(lambda: OURS[class_name](**kwargs), weights, grads, be)
    worst = assert_same_history(ours, run_keras(class_name, kwargs, weights, grads), dtype)
    print(f"{case} {np.dtype(dtype).name} {backend}: largest relative difference from Keras {worst:.1e}")


def test_amsgrad_and_momentum_change_the_result():
    """The parity cases exercise each variant: AMSGrad's max and RMSprop's momentum/centering move the weights."""
    weights, grads = problem(np.float64)
    final = {
        case: run_ours(lambda c=case: OURS[CASES[c][0]](**CASES[c][2]), weights, grads, "numpy")[-1][0]
        for case in CASES
    }
    assert not np.allclose(final["adam"], final["adam_amsgrad"], rtol=1e-6)
    assert not np.allclose(final["adam"], final["adamw"], rtol=1e-6)
    assert not np.allclose(final["rmsprop"], final["rmsprop_momentum"], rtol=1e-6)
    assert not np.allclose(final["rmsprop"], final["rmsprop_centered"], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["adam", "adam_amsgrad", "adamw", "adamw_amsgrad"])
def test_numba_fused_adam_is_bitwise_the_plain_rule(case, dtype):
    """The Numba kernel does the rule's operations in the same order and dtype (numbers rounded once to the
    weights' dtype, on the host): the results are equal to the last bit, at every step."""
    nb = backend_or_skip("numba")
    assert nb.fused_update(OURS[CASES[case][0]](**CASES[case][1]).rule) is not None
    weights, grads = problem(dtype)
    make = lambda: OURS[CASES[case][0]](**CASES[case][1])  # noqa: E731
    schedule = {4: 0.003}
    for a, b in zip(run_ours(make, weights, grads, nb, schedule), run_ours(make, weights, grads, "numpy", schedule)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_numba_adam_falls_back_to_the_rule_on_non_contiguous_weights():
    nb = backend_or_skip("numba")
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 8))
    w_nb, w_np = base.copy().T, base.copy().T  # transposed views: not C-contiguous
    g = rng.standard_normal((8, 6))
    a, b = Adam(0.01), Adam(0.01)
    for _ in range(3):
        a.apply([w_nb], [g], backend=nb)
        b.apply([w_np], [g], backend=mc.get_backend("numpy"))
    np.testing.assert_array_equal(w_nb, w_np)


def test_cupy_fused_adam_matches_the_rule():
    gpu = backend_or_skip("cupy")
    weights, grads = problem(np.float32)
    for make in (lambda: Adam(0.01), lambda: Adam(0.01, amsgrad=True), lambda: AdamW(0.01)):
        for a, b in zip(
            run_ours(make, weights, grads, gpu, {4: 0.003}), run_ours(make, weights, grads, "numpy", {4: 0.003})
        ):
            for x, y in zip(a, b):
                np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)  # CUDA may fuse multiply-adds


@needs_keras
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", ["adam", "adam_amsgrad", "adamw", "rmsprop_both"])
def test_learning_rate_set_between_steps_takes_effect_at_the_next(case, backend):
    """``optimizer.learning_rate = x`` between steps, as in Keras (fused kernels included): same weights as Keras
    given the same changes, and not those of an unchanged run."""
    be = backend_or_skip(backend)
    class_name, _, kwargs = CASES[case]
    weights, grads = problem(np.float64)
    schedule = {3: 2**-9, 7: 2**-5}
    make = lambda: OURS[class_name](**kwargs)  # noqa: E731
    ours = run_ours(make, weights, grads, be, schedule)
    assert_same_history(ours, run_keras(class_name, kwargs, weights, grads, schedule), np.float64)
    unchanged = run_ours(make, weights, grads, be)
    np.testing.assert_array_equal(ours[2][0], unchanged[2][0])  # before the change: the same
    assert not np.allclose(ours[3][0], unchanged[3][0], rtol=1e-9)  # the step right after it: different
    opt = make()
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5 and opt.get_config()["learning_rate"] == 0.5


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_learning_rate_set_from_a_callback(backend):
    """A callback that lowers the learning rate after the first epoch: fit gives the weights of train_on_batch
    steps with the same change made by hand (one batch per epoch, no shuffling)."""
    backend_or_skip(backend)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]

    def model():
        m = mc.Sequential(
            [layers.Dense(4, activation="relu", input_shape=(6,)), layers.Dense(3, activation="softmax")],
            seed=3,
            backend=backend,
        )
        m.compile(optimizer=Adam(0.05))
        return m

    by_callback = model()
    cb = mc.training.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(by_callback.optimizer, "learning_rate", 0.001)
    )
    by_callback.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, callbacks=[cb])
    by_hand, unchanged = model(), model()
    for _ in range(3):
        by_hand.train_on_batch(x, y)
        unchanged.train_on_batch(x, y)
        by_hand.optimizer.learning_rate = 0.001
    for a, b in zip(by_callback.get_weights(), by_hand.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not all(np.allclose(a, c) for a, c in zip(by_callback.get_weights(), unchanged.get_weights()))


@needs_keras
@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop"])
def test_defaults_and_names_are_keras(name):
    ours = OPTIMIZERS[name]()
    theirs = keras.optimizers.get(name).get_config()
    for key, value in ours.get_config().items():
        if key == "name":
            continue
        assert theirs[key] == pytest.approx(value, rel=1e-7), key  # Keras keeps learning_rate as float32
    assert mc.optimizers.get(name.upper()).get_config() == ours.get_config()


def test_optimizer_state_survives_a_checkpoint():
    """get_state/set_state carry every slot (AMSGrad's v_hat, RMSprop's momentum and average): continuing from a
    restored state gives the uninterrupted run's weights."""
    weights, grads = problem(np.float64)
    for make in (lambda: Adam(0.01, amsgrad=True), lambda: RMSprop(0.01, momentum=0.5, centered=True)):
        straight = make()
        w1 = [a.copy() for a in weights]
        for g in grads:
            straight.apply(w1, g)
        first = make()
        w2 = [a.copy() for a in weights]
        for g in grads[:5]:
            first.apply(w2, g)
        second = make()
        second.set_state(first.get_state(), w2)
        assert second.iterations == 5
        for g in grads[5:]:
            second.apply(w2, g)
        for a, b in zip(w1, w2):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: Adam(learning_rate=0), ValueError, "learning_rate"),
        (lambda: Adam(beta_1=1.0), ValueError, "beta_1"),
        (lambda: Adam(beta_2=-0.1), ValueError, "beta_2"),
        (lambda: Adam(epsilon=0), ValueError, "epsilon"),
        (lambda: Adam(amsgrad="yes"), TypeError, "amsgrad"),
        (lambda: AdamW(weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: AdamW(weight_decay=None), ValueError, "weight_decay"),
        (lambda: RMSprop(rho=1.0), ValueError, "rho"),
        (lambda: RMSprop(momentum=1.5), ValueError, "momentum"),
        (lambda: RMSprop(epsilon=-1), ValueError, "epsilon"),
        (lambda: RMSprop(centered=1), TypeError, "centered"),
        (lambda: mc.optimizers.get("adamax"), ValueError, "adamw"),
    ],
)
def test_bad_arguments_are_named(make, error, words):
    with pytest.raises(error, match=words):
        make()
