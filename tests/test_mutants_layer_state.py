"""Layer state that mutation testing (mutmut) showed no other test pinned down: BatchNormalization's initial weights,
default mode, moving statistics and fresh outputs; Dropout's masks from its seed, its default mode, rate 0, reseeding
and the data-parallel ``batch_slice``; hook handles; a Dense layer without penalties; the dtypes and defaults of the
padding, pooling and reshaping layers; a fused first convolution's skipped dL/dx; two describe() texts. Every expected
value is computed here from the layer's documented formula, in float64 NumPy."""

import numpy as np
import pytest
from test_mutants_layers import _FusingNumpy

import minicnn as mc
from minicnn import layers, regularizers


def _built(layer, dtype="float64", seed=0):
    """``layer`` built inside a model, then on its own again (a layer alone returns fresh arrays)."""
    mc.Sequential([layer], backend="numpy", dtype=dtype, seed=seed)
    layer.reuse_buffers = False
    return layer


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape) * 2.0 + 0.5


# --- BatchNormalization --------------------------------------------------------------------------------------------
def test_batch_norm_starts_from_its_documented_initial_weights_and_by_default_normalises_with_them():
    bn = _built(layers.BatchNormalization(epsilon=0.01, input_shape=(3,)))
    assert [k for k in bn.params] == ["gamma", "beta", "moving_mean", "moving_variance"]
    for name, value in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0), ("moving_variance", 1.0)):
        assert np.array_equal(bn.params[name], np.full(3, value))
    x = _x((4, 3))
    y = bn.forward(x)  # no training argument: inference, with the moving statistics (mean 0, variance 1)
    assert np.allclose(y, x / np.sqrt(1.0 + 0.01), rtol=1e-12, atol=0)
    assert np.array_equal(bn.params["moving_mean"], np.zeros(3))  # inference leaves them
    assert np.array_equal(bn.params["moving_variance"], np.ones(3))
    dy = _x((4, 3), seed=1)
    assert np.allclose(bn.backward(dy), dy / np.sqrt(1.0 + 0.01), rtol=1e-12, atol=0)


def test_batch_norm_training_updates_the_moving_statistics_with_momentum_and_the_biased_variance():
    m, eps = 0.75, 1e-3
    bn = _built(layers.BatchNormalization(momentum=m, epsilon=eps, input_shape=(2, 3)))
    moving_mean, moving_var = np.zeros(3), np.ones(3)
    for step in range(2):
        x = _x((4, 2, 3), seed=step) * np.array([1.0, 3.0, 0.5])
        y = bn.forward(x, training=True)
        rows = x.reshape(-1, 3)
        mu = rows.mean(axis=0)
        var = ((rows - mu) ** 2).mean(axis=0)  # biased: divided by M
        assert np.allclose(y, (x - mu) / np.sqrt(var + eps), rtol=1e-10, atol=1e-12)
        moving_mean = m * moving_mean + (1 - m) * mu
        moving_var = m * moving_var + (1 - m) * var
        assert np.allclose(bn.params["moving_mean"], moving_mean, rtol=1e-12, atol=1e-15)
        assert np.allclose(bn.params["moving_variance"], moving_var, rtol=1e-12, atol=0)
    # training backward: dX = inv_std / M * (M dY - sum dY - xhat * sum(dY * xhat)) (gamma = 1)
    dy = _x((4, 2, 3), seed=9)
    xhat, d2 = ((rows - mu) / np.sqrt(var + eps)), dy.reshape(-1, 3)
    expected = (8 * d2 - d2.sum(axis=0) - xhat * (d2 * xhat).sum(axis=0)) / np.sqrt(var + eps) / 8
    assert np.allclose(bn.backward(dy), expected.reshape(dy.shape), rtol=1e-10, atol=1e-12)
    # inference after training uses the moving statistics
    x = _x((5, 2, 3), seed=7)
    assert np.allclose(bn.forward(x), (x - moving_mean) / np.sqrt(moving_var + eps), rtol=1e-10, atol=1e-12)


def test_a_frozen_batch_norm_uses_and_keeps_its_moving_statistics_even_in_training():
    bn = _built(layers.BatchNormalization(momentum=0.5, epsilon=0.5, input_shape=(3,)))
    bn.trainable = False
    x = _x((4, 3))
    assert np.allclose(bn.forward(x, training=True), x / np.sqrt(1.5), rtol=1e-12, atol=0)
    assert np.array_equal(bn.params["moving_mean"], np.zeros(3))
    assert np.array_equal(bn.params["moving_variance"], np.ones(3))


@pytest.mark.parametrize("training", [True, False])
def test_a_batch_norm_on_its_own_returns_fresh_outputs_that_the_next_call_leaves_alone(training):
    bn = _built(layers.BatchNormalization(input_shape=(2, 3)))
    x1, x2 = _x((4, 2, 3), seed=1), _x((4, 2, 3), seed=2)
    y1 = bn.forward(x1, training=training)
    kept = y1.copy()
    y2 = bn.forward(x2, training=training)
    assert np.array_equal(y1, kept) and not np.shares_memory(y1, y2)


def test_batch_norm_initializers_are_called_with_the_shape_and_the_models_dtype():
    seen = []

    def init(value):
        def fn(shape, rng, dtype):
            seen.append((tuple(shape), np.dtype(dtype)))
            return np.full(shape, value, dtype=dtype)

        return fn

    bn = layers.BatchNormalization(
        gamma_initializer=init(2.0),
        beta_initializer=init(0.5),
        moving_mean_initializer=init(-1.0),
        moving_variance_initializer=init(4.0),
        input_shape=(5, 3),
    )
    mc.Sequential([bn], backend="numpy", dtype="float32")
    assert seen == [((3,), np.dtype(np.float32))] * 4
    assert [float(bn.params[k][0]) for k in ("gamma", "beta", "moving_mean", "moving_variance")] == [2, 0.5, -1, 4]
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2


@pytest.mark.parametrize("scale,center", [(True, False), (False, False), (True, True)])
def test_batch_norm_describe_writes_y_and_the_backward_formula_as_the_docstring(scale, center):
    bn = _built(layers.BatchNormalization(scale=scale, center=center, input_shape=(3,)))
    described = bn.describe()
    y = f"Y = {'gamma * ' if scale else ''}Xhat{' + beta' if center else ''} (batch mean and variance in training"
    assert y in described["forward"]
    backward = described["backward"]
    assert backward.startswith("dbeta = sum(dY); dgamma = sum(dY * Xhat); dX = gamma / sqrt(var + eps) / M * ")
    assert "(M * dY - dbeta - Xhat * dgamma) (training)" in backward
    assert backward.endswith(", gamma / sqrt(var + eps) * dY (inference)")


def test_average_pooling_describe_names_the_window_and_stride_height_first():
    pool = _built(layers.AveragePooling2D((2, 3), strides=(1, 2), input_shape=(6, 7, 1)))
    assert "each 2x3 window (stride 1x2; padding not counted)" in pool.describe()["forward"]


# --- Dropout -------------------------------------------------------------------------------------------------------
def _mask(seed, shape, rate):
    """The documented mask: uniforms from the layer's stream (NumPy's default_rng(seed)), m = [u >= r] / (1 - r)."""
    u = np.random.default_rng(seed).random(shape)
    return (u >= rate) / (1.0 - rate)


def test_dropout_is_off_by_default_and_in_training_applies_the_mask_drawn_from_its_seed():
    drop = _built(layers.Dropout(0.4, seed=11, input_shape=(3, 4)))
    x = _x((5, 3, 4))
    assert drop.forward(x) is x  # no training argument: inference, y = x
    assert drop.backward(x) is x
    mask = _mask(11, x.shape, 0.4)
    assert 0 < (mask == 0).sum() < mask.size
    y = drop.forward(x, training=True)
    assert np.allclose(y, x * mask, rtol=1e-15, atol=0)
    dy = _x((5, 3, 4), seed=3)
    assert np.allclose(drop.backward(dy), dy * mask, rtol=1e-15, atol=0)


def test_dropout_rate_zero_in_training_passes_input_and_gradient_through_untouched():
    drop = _built(layers.Dropout(0.0, seed=1, input_shape=(4,)))
    x, dy = _x((3, 4)), _x((3, 4), seed=1)
    assert drop.forward(x, training=True) is x
    assert drop.backward(dy) is dy


def test_dropout_reseed_restarts_the_stream_at_a_point_fixed_by_the_epoch():
    drop = _built(layers.Dropout(0.5, seed=4, input_shape=(6,)))
    x = np.ones((8, 6))
    drop.reseed(3)
    a = drop.forward(x, training=True).copy()
    drop.forward(x, training=True)  # more draws: the next reseed forgets them
    drop.reseed(3)
    assert np.array_equal(drop.forward(x, training=True), a)
    drop.reseed(4)
    assert not np.array_equal(drop.forward(x, training=True), a)
    assert not np.array_equal(a, _mask(4, x.shape, 0.5))  # not the stream's start either


@pytest.mark.parametrize("lo,hi", [(1, 3), (0, 2), (3, 5)])
def test_dropout_batch_slice_takes_its_rows_of_the_global_batchs_mask(lo, hi):
    big = 5
    x = _x((big, 3, 4))
    whole = _built(layers.Dropout(0.5, seed=6, input_shape=(3, 4)))
    part = _built(layers.Dropout(0.5, seed=6, input_shape=(3, 4)))
    part.batch_slice = (lo, hi, big)
    mask = _mask(6, x.shape, 0.5)
    assert np.allclose(whole.forward(x, training=True), x * mask, rtol=1e-15, atol=0)
    y = part.forward(x[lo:hi], training=True)
    assert y.shape == (hi - lo, 3, 4)
    assert np.allclose(y, x[lo:hi] * mask[lo:hi], rtol=1e-15, atol=0)
    dy = _x((hi - lo, 3, 4), seed=2)
    assert np.allclose(part.backward(dy), dy * mask[lo:hi], rtol=1e-15, atol=0)


# --- hooks, penalties ----------------------------------------------------------------------------------------------
def test_hooks_run_in_registration_order_and_a_handle_may_be_removed_twice():
    dense = layers.Dense(2, input_shape=(3,))
    model = mc.Sequential([dense], backend="numpy", dtype="float64")
    calls = []
    handles = [dense.register_forward_hook(lambda *a, i=i: calls.append(("f", i))) for i in range(3)]
    handles += [dense.register_backward_hook(lambda *a, i=i: calls.append(("b", i))) for i in range(2)]
    x = np.ones((2, 3))
    dense.run_forward(x)
    dense.run_backward(np.ones((2, 2)))
    assert calls == [("f", 0), ("f", 1), ("f", 2), ("b", 0), ("b", 1)]
    handles[1].remove()
    handles[1].remove()  # a second remove does nothing
    handles[3].remove()
    calls.clear()
    dense.run_forward(x)
    dense.run_backward(np.ones((2, 2)))
    assert calls == [("f", 0), ("f", 2), ("b", 1)]
    assert model.predict(x).shape == (2, 2)


def test_a_dense_layer_without_regularizers_has_no_penalty_and_with_one_its_formula():
    plain = _built(layers.Dense(2, input_shape=(3,)))
    assert plain.regularization_penalty() is None
    reg = _built(layers.Dense(2, kernel_regularizer=regularizers.L2(0.25), input_shape=(3,)))
    w = np.asarray(reg.params["kernel"], dtype=np.float64)
    assert float(reg.regularization_penalty()) == pytest.approx(0.25 * (w**2).sum(), rel=1e-12)


# --- padding, pooling, reshaping -----------------------------------------------------------------------------------
def test_zero_padding_pads_one_by_default_with_zeros_in_the_inputs_dtype():
    pad = _built(layers.ZeroPadding2D(input_shape=(2, 3, 1)), dtype="float32")
    x = (np.arange(12, dtype=np.float32) + 1).reshape(2, 2, 3, 1)
    y = pad.forward(x)
    expected = np.zeros((2, 4, 5, 1), np.float32)
    expected[:, 1:3, 1:4] = x
    assert y.dtype == np.float32 and np.array_equal(y, expected)
    pad.reuse_buffers = True
    pad.forward(x)
    assert np.array_equal(pad.forward(x), expected)  # the reused buffer's border is zeroed again
    assert np.array_equal(pad.backward(expected), x)


@pytest.mark.parametrize("pool", [layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D])
def test_global_pooling_gradient_keeps_the_models_dtype(pool):
    layer = _built(pool(input_shape=(2, 2, 3)), dtype="float32")
    x = np.arange(24, dtype=np.float32).reshape(2, 2, 2, 3)
    layer.forward(x)
    dx = layer.backward(np.ones((2, 3), np.float32))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert dx.sum() == pytest.approx(6.0)  # each output's unit gradient spread over (or routed to) its window


def test_reshape_accepts_a_single_int_as_its_target_shape():
    reshape = _built(layers.Reshape(6, input_shape=(2, 3)))
    assert reshape.target_shape == (6,) and reshape.output_shape == (6,)
    x = np.arange(12.0).reshape(2, 2, 3)
    assert np.array_equal(reshape.forward(x), x.reshape(2, 6))
    with pytest.raises(TypeError, match="target_shape must be a tuple of ints"):
        layers.Reshape(True)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_a_fused_first_convolution_skips_the_input_gradient_when_the_model_needs_none(activation):
    # Model.backward(input_gradient=False) lets the first layer return None instead of dL/dx; a fusing backend too.
    for backend in ("numpy", _FusingNumpy()):
        model = mc.Sequential(
            [layers.Conv2D(2, 3, activation=activation, input_shape=(5, 5, 1)), layers.Flatten(), layers.Dense(3)],
            seed=1,
            backend=backend,
            dtype="float64",
        )
        x = np.random.default_rng(0).standard_normal((2, 5, 5, 1))
        grad = np.ones((2, 3))
        model.forward(x, training=True)
        assert model.backward(grad, from_logits=True, input_gradient=False) is None
        model.forward(x, training=True)
        assert model.backward(grad, from_logits=True, input_gradient=True).shape == x.shape


def test_a_batch_norm_inside_a_model_reuses_its_output_buffer_at_inference_too():
    # Layer docstring: inside a model a layer writes into its own buffers, reused between calls; predict included.
    bn = layers.BatchNormalization(input_shape=(4, 3))
    model = mc.Sequential([bn], backend="numpy", dtype="float64")
    outputs = []
    bn.register_forward_hook(lambda layer, x, y: outputs.append(y))
    x = np.random.default_rng(2).standard_normal((5, 4, 3))
    first = model.predict(x, batch_size=5).copy()
    second = model.predict(x, batch_size=5)
    assert np.shares_memory(outputs[0], outputs[1])
    np.testing.assert_array_equal(first, second)  # and the second call's values are still right
    np.testing.assert_allclose(first, x / np.sqrt(1 + bn.epsilon), rtol=1e-12)  # fresh moving statistics: 0 and 1
