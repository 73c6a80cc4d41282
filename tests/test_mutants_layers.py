"""Dropout behaviour that mutation testing (mutmut) showed no other test pinned down: the rate's bounds and message,
the layer's own seed and name."""

import numpy as np
import pytest

import minicnn as mc
from minicnn import layers
from minicnn.backend import Backend, numpy_ref


def _mask(dropout, model_seed):
    model = mc.Sequential([dropout], seed=model_seed, backend="numpy")
    x = np.ones((4, 6), np.float32)
    return model.layers[0].forward(x, training=True)


def test_dropout_rate_zero_is_accepted_and_one_refused_by_name():
    assert np.array_equal(_mask(layers.Dropout(0.0, input_shape=(6,)), 0), np.ones((4, 6), np.float32))
    for rate in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"^Dropout rate must be in \[0, 1\), got "):
            layers.Dropout(rate)


def test_a_dropout_seed_fixes_the_masks_whatever_the_models_seed():
    a = _mask(layers.Dropout(0.5, seed=3, input_shape=(6,)), model_seed=1)
    b = _mask(layers.Dropout(0.5, seed=3, input_shape=(6,)), model_seed=2)
    c = _mask(layers.Dropout(0.5, input_shape=(6,)), model_seed=1)
    d = _mask(layers.Dropout(0.5, input_shape=(6,)), model_seed=2)
    again = _mask(layers.Dropout(0.5, input_shape=(6,)), model_seed=1)
    assert np.array_equal(a, b) and not np.array_equal(c, d)
    assert np.array_equal(c, again)  # without its own seed, the model's seed decides
    assert set(np.unique(a)) <= {0.0, 2.0}


def test_dropout_keeps_its_name():
    assert layers.Dropout(0.5, name="drop_a").get_config() == {"name": "drop_a", "rate": 0.5, "seed": None}


# --- every layer inside a model: hooks, reused buffers, configs, names, a fusing backend ----------------------------
def _model_a(backend="numpy", seed=4):
    return mc.Sequential(
        [
            layers.ZeroPadding2D(((1, 0), (0, 2)), input_shape=(6, 5, 2)),
            layers.Conv2D(3, (3, 2), activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(2),
            layers.AveragePooling2D(2, strides=1, padding="same"),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(5, activation="tanh"),
            layers.Activation("relu"),
            layers.Dense(3, activation="softmax"),
        ],
        seed=seed,
        backend=backend,
        dtype="float64",
    )


def _model_b(backend="numpy", seed=5):
    return mc.Sequential(
        [
            layers.Conv2D(4, 3, padding="same", activation="tanh", use_bias=False, input_shape=(5, 6, 2)),
            layers.GlobalMaxPooling2D(keepdims=True),
            layers.Reshape((2, 2)),
            layers.Flatten(),
            layers.Dense(4, activation="sigmoid"),
            layers.Reshape((2, 2, 1)),
            layers.GlobalAveragePooling2D(),
            layers.Dense(3, activation="softmax"),
        ],
        seed=seed,
        backend=backend,
        dtype="float64",
    )


def _batch(model, n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *model.input_shape))
    return x, np.eye(3)[rng.integers(0, 3, n)]


@pytest.mark.parametrize("make", [_model_a, _model_b])
def test_hooks_see_each_layers_input_output_and_gradients_and_stop_when_removed(make):
    model = make()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    seen = []
    handles = []
    for layer in model.layers:
        handles.append(layer.register_forward_hook(lambda lay, x, y: seen.append(("f", lay, x.copy(), y.copy()))))
        handles.append(
            layer.register_backward_hook(
                lambda lay, gi, go: seen.append(("b", lay, None if gi is None else gi.copy(), go.copy()))
            )
        )
    x, y = _batch(model)
    model.train_on_batch(x, y)
    forward = [s for s in seen if s[0] == "f"]
    backward = [s for s in seen if s[0] == "b"]
    assert [s[1] for s in forward] == model.layers and [s[1] for s in backward] == model.layers[::-1]
    np.testing.assert_array_equal(forward[0][2], x)
    for before, after in zip(forward, forward[1:]):  # each layer's input is the previous one's output
        np.testing.assert_array_equal(after[2], before[3])
        assert after[2].shape[1:] == after[1].input_shape and after[3].shape[1:] == after[1].output_shape
    first_skips = isinstance(model.layers[0], layers.LinearWithActivation)
    assert (backward[-1][2] is None) == first_skips  # a first Conv2D/Dense skips dL/dx in training
    for later, earlier in zip(backward, backward[1:]):  # dL/d(input) of a layer is dL/d(output) of the one before
        np.testing.assert_array_equal(earlier[3], later[2])
    count = len(seen)
    for handle in handles:
        handle.remove()
    model.train_on_batch(x, y)
    assert len(seen) == count


def test_two_hooks_on_one_layer_both_run_and_a_hook_must_be_callable():
    layer = layers.Dense(2, input_shape=(3,))
    model = mc.Sequential([layer], backend="numpy")
    calls = []
    first = layer.register_forward_hook(lambda *a: calls.append(1))
    layer.register_forward_hook(lambda *a: calls.append(2))
    model.predict(np.ones((1, 3), np.float32))
    assert calls == [1, 2]
    first.remove()
    model.predict(np.ones((1, 3), np.float32))
    assert calls == [1, 2, 2]
    for register in (layer.register_forward_hook, layer.register_backward_hook):
        with pytest.raises(TypeError, match=r"^a hook must be callable, got int$"):
            register(3)


@pytest.mark.parametrize("make", [_model_a, _model_b])
def test_inside_a_model_every_layer_writes_into_its_own_buffers_reused_across_steps(make):
    # Layer docstring: inside a model (reuse_buffers) a layer reuses its output and gradient buffers between steps;
    # Flatten and Reshape return views of their input, the first layer returns no dL/dx in training.
    model = make()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    steps = []
    for layer in model.layers:
        layer.register_forward_hook(lambda lay, x, y: steps[-1].setdefault(lay.name, {}).update(y=y))
        layer.register_backward_hook(lambda lay, gi, go: steps[-1].setdefault(lay.name, {}).update(gi=gi))
    x, y = _batch(model)
    for _ in range(2):
        steps.append({})
        model.train_on_batch(x, y)
    views = (layers.Flatten, layers.Reshape)
    for i, layer in enumerate(model.layers):
        a, b = steps[0][layer.name], steps[1][layer.name]
        fresh_output = isinstance(layer, layers.Activation) or (
            isinstance(layer, layers.LinearWithActivation) and layer.activation != "relu"
        )
        if not isinstance(layer, views) and not fresh_output:  # other activations than ReLU allocate their output
            assert a["y"] is not None and np.shares_memory(a["y"], b["y"]), (layer.name, "output")
            if i > 0 or not isinstance(layer, layers.LinearWithActivation):
                assert np.shares_memory(a["gi"], b["gi"]), (layer.name, "input gradient")
    # on its own a layer returns fresh arrays
    alone = layers.Dense(2, activation="tanh", input_shape=(3,))
    mc.Sequential([alone], backend="numpy")
    alone.reuse_buffers = False
    xs = np.ones((2, 3), np.float32)
    assert not np.shares_memory(alone.forward(xs), alone.forward(xs))


class _FusingNumpy(Backend):
    """The NumPy backend posing as one that fuses a convolution's passes (like Numba's), each fused call composed
    of the reference kernels; it records what the layer passes."""

    fuses_conv2d = True

    def __init__(self):
        self.calls = []

    def conv2d_fused_forward(self, x, kernel2d, bias, win, relu, out=None, scratch=None):
        self.calls.append(("forward", relu, out, scratch))
        assert callable(scratch)
        return numpy_ref.conv2d_forward(np, x, kernel2d, bias, win, relu, out=out)[0]

    def conv2d_fused_backward(
        self,
        x,
        grad,
        kernel2d,
        win,
        grad_kernel,
        grad_bias,
        relu_output=None,
        input_gradient=True,
        out=None,
        scratch=None,
    ):
        self.calls.append(("backward", relu_output is not None, out, scratch))
        assert callable(scratch)
        cols = numpy_ref.im2col(np, x, win)
        dx = numpy_ref.conv2d_backward(
            np, cols, grad, kernel2d, x.shape, win, grad_kernel, grad_bias, relu_output, input_gradient
        )
        return numpy_ref._into(out, dx) if dx is not None else None


def _conv_model(backend, activation, use_bias):
    return mc.Sequential(
        [
            layers.Conv2D(3, 3, activation="tanh", input_shape=(6, 5, 2)),
            layers.Conv2D(4, (2, 3), strides=(1, 2), padding="same", activation=activation, use_bias=use_bias),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ],
        seed=2,
        backend=backend,
        dtype="float64",
    )


@pytest.mark.parametrize("activation,use_bias", [("relu", True), ("relu", False), ("tanh", True), (None, False)])
def test_a_fusing_backend_gets_the_convolutions_arguments_and_gives_the_plain_paths_results(activation, use_bias):
    fusing = _FusingNumpy()
    plain, fused = _conv_model("numpy", activation, use_bias), _conv_model(fusing, activation, use_bias)
    for model in (plain, fused):  # biases away from their zero start, so that a lost bias shows
        for layer in model.layers:
            if "bias" in getattr(layer, "params", {}):
                layer.params["bias"][...] = np.linspace(-0.5, 0.5, layer.params["bias"].size)
    x, y = _batch(plain, seed=1)
    np.testing.assert_allclose(fused.predict(x), plain.predict(x), rtol=1e-12)
    loss_p, grads_p = plain.compute_gradients(x, y)
    fusing.calls.clear()
    loss_f, grads_f = fused.compute_gradients(x, y)
    assert loss_f == pytest.approx(loss_p, rel=1e-12)
    for a, b in zip(grads_f, grads_p):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    relu = activation == "relu"
    assert [c[:2] for c in fusing.calls] == [
        ("forward", False),
        ("forward", relu),
        ("backward", relu),  # the ReLU's mask is formed in the kernel: it gets the forward's output
        ("backward", False),
    ]
    assert all(c[2] is not None for c in fusing.calls)  # inside a model the layer lends its output buffers
    x2, _ = _batch(plain, seed=2)
    fused.predict(x2)
    forwards = [c for c in fusing.calls if c[0] == "forward"]
    assert np.shares_memory(forwards[0][2], forwards[-2][2]) and np.shares_memory(forwards[1][2], forwards[-1][2])


def _every_layer():
    return [
        (layers.Conv2D(3, (3, 2), strides=(2, 1), padding="same", activation="relu", use_bias=False), (6, 5, 2)),
        (layers.Dense(4, activation="tanh", use_bias=False), (5,)),
        (layers.MaxPooling2D((2, 3), strides=(1, 2), padding="same"), (6, 5, 2)),
        (layers.AveragePooling2D(3, strides=2), (6, 5, 2)),
        (layers.Dropout(0.25, seed=3), (5,)),
        (layers.Flatten(), (3, 2, 2)),
        (layers.BatchNormalization(momentum=0.5, epsilon=0.01, center=False), (4, 3)),
        (layers.GlobalAveragePooling2D(keepdims=True), (4, 3, 2)),
        (layers.GlobalMaxPooling2D(), (4, 3, 2)),
        (layers.Reshape((-1, 2)), (3, 2, 2)),
        (layers.ZeroPadding2D((1, (2, 0))), (3, 2, 2)),
        (layers.Activation("sigmoid"), (5,)),  # its config once lacked the activation: a rebuilt twin failed
    ]


@pytest.mark.parametrize("index", range(12))
def test_a_layer_rebuilt_from_its_config_is_the_same_layer(index):
    layer, shape = _every_layer()[index]
    config = layer.get_config()
    assert config["name"] is None or isinstance(config["name"], str)
    twin = type(layer)(**config)
    assert twin.get_config() == config
    first = mc.Sequential([type(layer)(**config, input_shape=shape)], seed=1, backend="numpy", dtype="float64")
    second = mc.Sequential([type(layer)(**config, input_shape=shape)], seed=1, backend="numpy", dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, *shape))
    np.testing.assert_array_equal(first.predict(x), second.predict(x))
    assert first.layers[0].output_shape == second.layers[0].output_shape


@pytest.mark.parametrize("index", range(12))
def test_a_first_layer_keeps_its_name_and_input_shape(index):
    layer, shape = _every_layer()[index]
    config = {k: v for k, v in layer.get_config().items() if k != "name"}
    named = type(layer)(**config, input_shape=shape, name="first_layer")
    model = mc.Sequential([named], backend="numpy")
    assert model.layers[0].name == "first_layer" and model.input_shape == shape


def test_regularizers_survive_the_config_and_penalise_the_weights_they_name():
    for cls, args, shape in ((layers.Dense, (3,), (4,)), (layers.Conv2D, (2, 2), (3, 3, 1))):
        only_kernel = cls(*args, kernel_regularizer=mc.regularizers.L2(0.5), input_shape=shape)
        only_bias = cls(*args, bias_regularizer=mc.regularizers.L1(0.25), input_shape=shape)
        for layer in (only_kernel, only_bias):
            mc.Sequential([layer], seed=0, backend="numpy", dtype="float64")
            layer.params["bias"][...] = np.linspace(-1, 1, layer.params["bias"].size)
        kernel = only_kernel.params["kernel"]
        assert float(only_kernel.regularization_penalty()) == pytest.approx(0.5 * np.sum(kernel**2))
        bias = only_bias.params["bias"]
        assert float(only_bias.regularization_penalty()) == pytest.approx(0.25 * np.sum(np.abs(bias)))
        assert set(only_kernel.weight_regularizers()) == {"kernel"} and set(only_bias.weight_regularizers()) == {"bias"}
        config = only_kernel.get_config()
        assert "bias_regularizer" not in config and "kernel_regularizer" not in only_bias.get_config()
        assert config["kernel_regularizer"] == {"class_name": "L2", "config": mc.regularizers.L2(0.5).get_config()}
        assert only_bias.get_config()["bias_regularizer"]["config"] == mc.regularizers.L1(0.25).get_config()


@pytest.mark.parametrize(
    "make,error,message",
    [
        (lambda: layers.Conv2D(0, 3), ValueError, r"^filters must be a positive int, got 0$"),
        (lambda: layers.Conv2D(2.0, 3), ValueError, r"^filters must be a positive int, got 2\.0$"),
        (lambda: layers.Conv2D(2, 0), ValueError, r"^kernel_size must be positive, got 0$"),
        (lambda: layers.Conv2D(2, 3, strides=(1, 0)), ValueError, r"^strides must be positive, got \(1, 0\)$"),
        (lambda: layers.Dense(0), ValueError, r"^units must be a positive int, got 0$"),
        (lambda: layers.Dense(2.0), ValueError, r"^units must be a positive int, got 2\.0$"),
        (lambda: layers.MaxPooling2D(0), ValueError, r"^pool_size must be positive, got 0$"),
        (lambda: layers.AveragePooling2D(2, strides=0), ValueError, r"^strides must be positive, got 0$"),
        (lambda: layers.ZeroPadding2D(True), TypeError, r"^padding must be an int, a pair of ints"),
        (lambda: layers.ZeroPadding2D(-1), ValueError, r"^padding must be >= 0, got -1$"),
        (lambda: layers.ZeroPadding2D((1, True)), TypeError, r"^padding \(width\) must be an int, got True$"),
        (lambda: layers.ZeroPadding2D(((1, 2), (-1, 0))), ValueError, r"^padding \(width, before\) must be >= 0"),
        (lambda: layers.ZeroPadding2D(((1.0, 2), 0)), TypeError, r"^padding \(height, before\) must be an int"),
        (lambda: layers.Reshape(True), TypeError, r"^target_shape must be a tuple of ints"),
        (lambda: layers.Reshape((2, 0)), ValueError, r"^target_shape must hold positive sizes"),
        (lambda: layers.BatchNormalization(momentum=-0.1), ValueError, r"momentum must be in \[0, 1\), got -0\.1$"),
    ],
)
def test_bad_layer_arguments_are_refused_with_their_message(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_the_smallest_legal_arguments_are_accepted():
    assert layers.Conv2D(1, 1).filters == 1 and layers.Dense(1).units == 1
    assert layers.Reshape((1, -1)).target_shape == (1, -1)
    assert layers.BatchNormalization(momentum=0.0).momentum == 0.0
    assert layers.ZeroPadding2D(0).padding == ((0, 0), (0, 0))


@pytest.mark.parametrize(
    "layer,shape,message",
    [
        (layers.Conv2D(2, 4, name="c"), (3, 5, 1), r"^layer 'c': kernel \(4, 4\) with padding 'valid' does not fit"),
        (layers.Conv2D(2, 4, name="c"), (5,), r"^Conv2D 'c' expects inputs of shape \(height, width, channels\)"),
        (layers.MaxPooling2D(4, name="m"), (3, 5, 1), r"^layer 'm': pool \(4, 4\) with padding 'valid' does not fit"),
        (layers.AveragePooling2D(2, name="a"), (5,), r"^AveragePooling2D 'a' expects inputs of shape \(height, "),
        (layers.Dense(2, name="d"), (3, 4), r"^Dense 'd' expects flat inputs \(features,\), got \(3, 4\); put a Fl"),
        (layers.GlobalMaxPooling2D(name="g"), (4,), r"^GlobalMaxPooling2D 'g' expects inputs of shape \(height, "),
    ],
)
def test_inputs_that_do_not_fit_name_the_layer(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        mc.Sequential([type(layer)(**{**layer.get_config(), "input_shape": shape})], backend="numpy")
