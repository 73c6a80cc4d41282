"""Optimizer behaviour that mutation testing (mutmut) showed no other test pinned down: state after a third step,
AdamW at weight_decay 1, the bounds and messages of the hyperparameter checks, the state's keys, configs that
rebuild the optimizer, one optimizer compiled by two models, the gate, and a fused kernel against the plain rule."""

import math

import numpy as np
import pytest

from minicnn import optimizers
from minicnn.backend import available_backends, get_backend
from minicnn.optimizers import SGD, Adadelta, Adam, AdamW, RMSprop


def test_adadelta_three_steps_match_the_formula_in_float64():
    # The third step is the first whose delta reads an E[dx^2] that was itself decayed by rho.
    lr, rho, eps = 0.5, 0.9, 1e-3
    x, opt = np.array([1.0, -2.0]), Adadelta(learning_rate=lr, rho=rho, epsilon=eps)
    ref_x, eg2, edx2 = x.copy(), np.zeros(2), np.zeros(2)
    for g in (np.array([0.5, -1.0]), np.array([0.1, 0.3]), np.array([-0.4, 0.2])):
        eg2 = rho * eg2 + (1 - rho) * g * g
        delta = np.sqrt(edx2 + eps) / np.sqrt(eg2 + eps) * g
        edx2 = rho * edx2 + (1 - rho) * delta * delta
        ref_x = ref_x - lr * delta
        opt.apply([x], [g])
    np.testing.assert_allclose(x, ref_x, rtol=1e-14)
    np.testing.assert_allclose(opt.accumulated_delta[0], edx2, rtol=1e-14)
    np.testing.assert_allclose(opt.accumulated_grad[0], eg2, rtol=1e-14)


def test_adamw_decays_by_the_plain_learning_rate_even_at_weight_decay_one():
    lr, g = 0.1, np.array([0.5, -0.25])
    x = np.array([1.0, -2.0])
    AdamW(learning_rate=lr, weight_decay=1.0).apply([x], [g])
    decayed = np.array([1.0, -2.0]) * (1 - lr)
    m, v = 0.1 * g, 0.001 * g * g
    lr_t = lr * math.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(x, decayed - m * lr_t / (np.sqrt(v) + 1e-7), rtol=1e-12)


def test_adamw_passes_its_epsilon_on_to_adam():
    x, y, g = np.array([1.0]), np.array([1.0]), np.array([1e-3])
    AdamW(weight_decay=0.0, epsilon=0.5).apply([x], [g])
    Adam(epsilon=0.5).apply([y], [g])
    np.testing.assert_array_equal(x, y)
    assert AdamW(epsilon=0.5).get_config()["epsilon"] == 0.5


@pytest.mark.parametrize(
    "make",
    [
        lambda: Adam(beta_1=0.0, beta_2=0.0),
        lambda: RMSprop(rho=0.0),
        lambda: Adadelta(rho=0.0),
        lambda: AdamW(weight_decay=0),
        lambda: SGD(momentum=0.0),
    ],
)
def test_the_lower_bounds_are_accepted(make):
    make()  # 0 is a valid beta, rho, weight decay and momentum


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: Adam(beta_1=1.0), "beta_1"),
        (lambda: Adam(beta_2=1.0), "beta_2"),
        (lambda: Adam(epsilon=0), "epsilon"),
        (lambda: Adadelta(epsilon=-1), "epsilon"),
        (lambda: RMSprop(epsilon=0), "epsilon"),
        (lambda: RMSprop(momentum=1.0), "momentum"),
        (lambda: SGD(momentum=1.0), "momentum"),
        (lambda: SGD(momentum=1.5), "momentum"),
        (lambda: AdamW(weight_decay=math.inf), "weight_decay"),
        (lambda: SGD(learning_rate=object()), "learning_rate"),
    ],
)
def test_bad_hyperparameters_are_refused_by_name(make, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        make()


def test_get_lists_the_known_names_in_its_errors():
    with pytest.raises(ValueError, match="known optimizers: adadelta, sgd, adam, adamw, rmsprop$"):
        optimizers.get("adagrad")
    with pytest.raises(TypeError, match=r"a name \(adadelta, sgd, adam, adamw, rmsprop\) or an Optimizer, got 3"):
        optimizers.get(3)


@pytest.mark.parametrize(
    "make, keys",
    [
        (lambda: RMSprop(), {"velocities"}),
        (lambda: RMSprop(momentum=0.5), {"velocities", "momentums"}),
        (lambda: RMSprop(centered=True), {"velocities", "average_gradients"}),
        (lambda: Adam(amsgrad=True), {"momentums", "velocities", "velocity_hats"}),
    ],
)
def test_the_state_holds_exactly_the_slots_the_variant_uses(make, keys):
    opt = make()
    assert opt.get_state() == {"iterations": 0, **{k: [] for k in keys}}  # nothing built yet
    x = np.array([1.0, 2.0])
    opt.apply([x], [np.array([0.3, -0.1])])
    state = opt.get_state()
    assert set(state) == {"iterations"} | keys
    assert all(len(state[k]) == 1 and state[k][0].shape == (2,) for k in keys)


def test_amsgrad_keeps_the_largest_velocity():
    opt, x = Adam(amsgrad=True), np.array([1.0])
    opt.apply([x], [np.array([1.0])])
    opt.apply([x], [np.array([0.0])])
    assert opt.velocity_hats[0][0] == pytest.approx(0.001)  # v after step 1; v has since decayed
    assert opt.velocities[0][0] < opt.velocity_hats[0][0]


@pytest.mark.parametrize(
    "opt",
    [
        SGD(0.1, momentum=0.5, nesterov=True),
        Adadelta(0.5, rho=0.8, epsilon=1e-5),
        Adam(0.01, beta_1=0.5, beta_2=0.6, epsilon=1e-4, amsgrad=True),
        AdamW(0.01, weight_decay=0.1, epsilon=1e-4),
        RMSprop(0.01, rho=0.7, momentum=0.2, epsilon=1e-4, centered=True),
    ],
)
def test_the_config_rebuilds_the_same_optimizer(opt):
    config = opt.get_config()
    assert config["name"] == type(opt).__name__
    settings = {k: v for k, v in config.items() if k != "name"}
    assert optimizers.OPTIMIZERS[config["name"].lower()](**settings).get_config() == config


class _Model:  # anything a weak reference can point at stands for a model here
    pass


def test_a_second_model_gets_a_fresh_twin_with_the_same_settings():
    first, second = _Model(), _Model()
    opt = Adadelta(0.5, rho=0.8)
    assert opt.for_model(first) is opt
    opt.apply([np.array([1.0])], [np.array([0.5])])
    assert opt.for_model(first) is opt  # the owner keeps it, state and all
    twin = opt.for_model(second)
    assert twin is not opt and (twin.learning_rate, twin.rho) == (0.5, 0.8)
    assert twin.get_state() == {"iterations": 0, "accumulated_grad": [], "accumulated_delta": []}
    assert twin.for_model(second) is twin  # the twin now belongs to the second model
    assert opt.iterations == 1 and len(opt.accumulated_grad) == 1


def test_an_optimizer_compiled_by_two_models_before_any_step_splits_cleanly():
    fresh, first, second = SGD(0.1, momentum=0.5), _Model(), _Model()
    fresh.for_model(first)
    twin = fresh.for_model(second)  # nothing built yet: no state to leave behind
    assert twin is not fresh and twin.momentum == 0.5


def test_the_defaults_are_the_reference_frameworks_except_adadeltas_tutorial_rate():
    assert SGD().get_config() == {"name": "SGD", "learning_rate": 0.01, "momentum": 0.0, "nesterov": False}
    assert Adadelta().get_config() == {"name": "Adadelta", "learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-7}
    assert Adam().get_config() == {
        "name": "Adam",
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
    }


def test_a_model_without_weights_still_counts_steps_and_restores():
    opt = Adam()
    opt.apply([], [])
    assert opt.iterations == 1
    opt.set_state({"iterations": 3}, [])
    assert opt.iterations == 3
    one = [np.zeros(2)]  # and a single weight
    opt.set_state({"iterations": 2, "momentums": [np.ones(2)]}, one)
    np.testing.assert_array_equal(opt.momentums[0], np.ones(2))


class _SpyBackend:
    """A backend that offers a fused kernel which records its arguments and declines (the plain rule runs)."""

    xp = np

    def __init__(self, gates_on_device):
        self.gates_on_device, self.rules, self.calls = gates_on_device, [], []

    def fused_update(self, rule):
        self.rules.append(rule)
        return lambda *args: self.calls.append(args) and False


@pytest.mark.parametrize("gates_on_device", [False, True])
def test_apply_hands_the_fused_kernel_the_arrays_numbers_and_gate(gates_on_device):
    spy, opt, plain = _SpyBackend(gates_on_device), Adam(0.01, amsgrad=True), Adam(0.01, amsgrad=True)
    x, g, gate = np.array([1.0, 2.0]), np.array([0.5, -0.5]), np.array(True)
    hyper = opt.hyperparameters()
    opt.apply([x], [g], gate=gate, backend=spy)
    assert spy.rules == ["adam_amsgrad"] and len(spy.calls) == 1
    args = spy.calls[0]
    assert args[0] is x and args[1] is g
    assert [a is s[0] for a, s in zip(args[2:5], (opt.momentums, opt.velocities, opt.velocity_hats))] == [True] * 3
    assert args[5:11] == hyper and len(args) == 12
    assert args[11] is (gate if gates_on_device else None)  # a host-read gate is not read again
    y = np.array([1.0, 2.0])
    plain.apply([y], [g])
    np.testing.assert_array_equal(x, y)  # the kernel declined, so the plain rule took the step
    opt.apply([x], [g], gate=np.array(False), backend=spy)
    assert len(spy.calls) == (2 if gates_on_device else 1)  # on the device the kernel reads the gate itself


def test_apply_names_a_count_mismatch_and_honours_the_gate():
    opt, x = SGD(0.5), np.array([1.0])
    with pytest.raises(ValueError, match="^2 parameters but 1 gradients$"):
        opt.apply([x, x], [x])
    opt.apply([x], [np.array([1.0])], gate=np.array(False))
    assert x[0] == 1.0 and opt.iterations == 0
    opt.apply([x], [np.array([1.0])], gate=np.array(True))
    assert x[0] == 0.5 and opt.iterations == 1


def test_set_state_refuses_a_wrong_count_or_shape_by_name_and_restores_the_rest():
    params = [np.zeros(2), np.zeros(3)]
    opt = Adam()
    with pytest.raises(ValueError, match="'momentums' holds 1 arrays, the model has 2"):
        opt.set_state({"iterations": 1, "momentums": [np.ones(2)]}, params)
    with pytest.raises(ValueError, match=r"'momentums': shape \(3,\) where the parameter has \(2,\)"):
        opt.set_state({"iterations": 1, "momentums": [np.ones(3), np.ones(3)]}, params)
    # A state without momentums (an empty list) leaves them at zero and still restores the velocities.
    opt.set_state({"iterations": 4, "velocities": [np.full(2, 2.0), np.full(3, 3.0)]}, params)
    assert opt.iterations == 4
    np.testing.assert_array_equal(opt.velocities[1], np.full(3, 3.0))
    np.testing.assert_array_equal(opt.momentums[0], np.zeros(2))


@pytest.mark.skipif("numba" not in available_backends(), reason="the Numba backend is not installed")
@pytest.mark.parametrize("make", [lambda: Adadelta(0.5), lambda: Adam(0.01), lambda: Adam(0.01, amsgrad=True)])
def test_the_fused_kernel_takes_the_plain_rules_step_and_honours_the_gate(make):
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=5).astype(np.float32)]
    plain, fused = [p.copy() for p in params], [p.copy() for p in params]
    reference, opt = make(), make()
    for _ in range(3):
        grads = [rng.normal(size=p.shape).astype(np.float32) for p in params]
        reference.apply(plain, grads, backend=get_backend("numpy"))
        opt.apply(fused, grads, gate=np.array(True), backend=get_backend("numba"))
        opt.apply(fused, grads, gate=np.array(False), backend=get_backend("numba"))
        for a, b in zip(plain, fused):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert opt.iterations == 3


# --- RMSprop: its three variants against the docstring's rule, and its checks -------------------------------
def _rmsprop_reference(x, grads, lr, rho, eps, momentum, centered):
    """The rule of RMSprop's docstring, written out in float64: (x, v, mom, a) after the steps."""
    x, v, mom, a = x.copy(), np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    for g in grads:
        v = rho * v + (1 - rho) * g**2
        a = rho * a + (1 - rho) * g
        step = lr * g / np.sqrt((v - a**2 if centered else v) + eps)
        mom = momentum * mom + step
        x = x - (mom if momentum > 0 else step)
    return x, v, mom, a


@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_three_steps_match_the_formula_in_float64(momentum, centered):
    lr, rho, eps = 0.1, 0.8, 0.05  # an epsilon large enough to count inside the root
    grads = (np.array([0.5, -1.0, 0.2]), np.array([0.1, 0.3, -0.6]), np.array([-0.4, 0.2, 0.3]))
    x = np.array([1.0, -2.0, 0.5])
    ref_x, v, mom, a = _rmsprop_reference(x, grads, lr, rho, eps, momentum, centered)
    opt = RMSprop(learning_rate=lr, rho=rho, momentum=momentum, epsilon=eps, centered=centered)
    for g in grads:
        opt.apply([x], [g])
    np.testing.assert_allclose(x, ref_x, rtol=1e-13)
    np.testing.assert_allclose(opt.velocities[0], v, rtol=1e-13)
    if momentum > 0:
        np.testing.assert_allclose(opt.momentums[0], mom, rtol=1e-13)
    if centered:
        np.testing.assert_allclose(opt.average_gradients[0], a, rtol=1e-13)


def test_rmsprop_defaults_are_the_reference_frameworks():
    assert RMSprop().get_config() == {
        "name": "RMSprop",
        "learning_rate": 0.001,
        "rho": 0.9,
        "momentum": 0.0,
        "epsilon": 1e-7,
        "centered": False,
    }


@pytest.mark.parametrize("rho", [1.0, 1.5, -0.1])
def test_rmsprop_refuses_a_rho_outside_zero_to_one_by_name(rho):
    with pytest.raises(ValueError, match=rf"^rho must be in \[0, 1\), got {rho!r}$"):
        RMSprop(rho=rho)


@pytest.mark.parametrize(
    "make, name", [(lambda: RMSprop(centered=1), "centered"), (lambda: Adam(amsgrad=1), "amsgrad")]
)
def test_the_variant_switches_must_be_booleans_and_the_error_names_them(make, name):
    with pytest.raises(TypeError, match=rf"^{name} must be True or False, got 1$"):
        make()


# --- Adam and AdamW -----------------------------------------------------------------------------------------
def test_adamw_three_steps_match_the_formula_in_float64():
    # Adam's docstring rule with the decoupled decay first; the step size's bias correction changes every step.
    lr, wd, b1, b2, eps = 0.1, 0.2, 0.5, 0.7, 1e-3
    grads = (np.array([0.5, -1.0]), np.array([0.1, 0.3]), np.array([-0.4, 0.2]))
    x = np.array([1.0, -2.0])
    ref_x, m, v = x.copy(), np.zeros(2), np.zeros(2)
    opt = AdamW(learning_rate=lr, weight_decay=wd, beta_1=b1, beta_2=b2, epsilon=eps)
    for t, g in enumerate(grads, start=1):
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        assert opt.step_size() == pytest.approx(lr_t, rel=1e-14)
        ref_x = ref_x - ref_x * wd * lr
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        ref_x = ref_x - m * lr_t / (np.sqrt(v) + eps)
        opt.apply([x], [g])
    np.testing.assert_allclose(x, ref_x, rtol=1e-13)
    np.testing.assert_allclose(opt.momentums[0], m, rtol=1e-13)
    np.testing.assert_allclose(opt.velocities[0], v, rtol=1e-13)


def test_adamw_passes_its_betas_and_amsgrad_on_and_has_the_reference_defaults():
    opt = AdamW(beta_1=0.5, beta_2=0.6, amsgrad=True)
    assert (opt.beta_1, opt.beta_2, opt.amsgrad, opt.rule) == (0.5, 0.6, True, "adam_amsgrad")
    assert AdamW().get_config() == {
        "name": "AdamW",
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
        "weight_decay": 0.004,
    }


@pytest.mark.parametrize("weight_decay", [True, "0.1", -0.1])
def test_adamw_refuses_a_weight_decay_that_is_not_a_non_negative_number(weight_decay):
    with pytest.raises(ValueError, match="^weight_decay must be a non-negative finite float"):
        AdamW(weight_decay=weight_decay)
