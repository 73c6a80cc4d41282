"""Sequential: building, naming, summary, weights, seeds, training steps."""

import numpy as np
import pytest
from conftest import synthetic_digits, tutorial_layers

import minicnn as mc
from minicnn import layers

EXPECTED_ROWS = [
    ("conv2d (Conv2D)", "(None, 24, 24, 32)", 832),
    ("max_pooling2d (MaxPooling2D)", "(None, 12, 12, 32)", 0),
    ("conv2d_1 (Conv2D)", "(None, 8, 8, 64)", 51264),
    ("max_pooling2d_1 (MaxPooling2D)", "(None, 4, 4, 64)", 0),
    ("dropout (Dropout)", "(None, 4, 4, 64)", 0),
    ("flatten (Flatten)", "(None, 1024)", 0),
    ("dense (Dense)", "(None, 120)", 123000),
    ("dropout_1 (Dropout)", "(None, 120)", 0),
    ("dense_1 (Dense)", "(None, 84)", 10164),
    ("dense_2 (Dense)", "(None, 10)", 850),
]


def test_tutorial_summary_matches_keras(tutorial_model):
    text = tutorial_model().summary(print_fn=None)
    lines = text.splitlines()
    assert lines[0] == 'Model: "sequential"'
    assert set(lines[1]) == {"_"} and set(lines[3]) == {"="}
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    for line, (name, shape, count) in zip(lines[4:14], EXPECTED_ROWS):
        assert line.startswith(name)
        assert shape in line and line.endswith(str(count))
    assert set(lines[14]) == {"="}
    assert lines[15:18] == ["Total params: 186,110", "Trainable params: 186,110", "Non-trainable params: 0"]
    assert set(lines[18]) == {"_"}


def test_weights_are_in_keras_layout_and_order(tutorial_model):
    shapes = [w.shape for w in tutorial_model().get_weights()]
    assert shapes == [
        (5, 5, 1, 32),
        (32,),
        (5, 5, 32, 64),
        (64,),
        (1024, 120),
        (120,),
        (120, 84),
        (84,),
        (84, 10),
        (10,),
    ]


def test_set_weights_roundtrip_and_shape_error(tutorial_model):
    a, b = tutorial_model(seed=1), tutorial_model(seed=2)
    b.set_weights(a.get_weights())
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    bad = a.get_weights()
    bad[2] = bad[2][:4]
    with pytest.raises(ValueError, match="conv2d_1.*kernel.*\\(5, 5, 32, 64\\)"):
        b.set_weights(bad)
    with pytest.raises(ValueError, match="10 weight arrays, got 9"):
        b.set_weights(bad[:9])


def test_glorot_uniform_limits(tutorial_model):
    w = tutorial_model().get_weights()
    limit = np.sqrt(6 / (25 * 32 + 25 * 64))
    assert np.abs(w[2]).max() <= limit and np.abs(w[2]).max() > 0.95 * limit
    assert not w[3].any()


def test_same_seed_same_weights_and_losses_different_seed_differs(tutorial_model):
    x, y = synthetic_digits(32)
    runs = []
    for seed in (7, 7, 8):
        model = tutorial_model(seed=seed)
        losses = [model.train_on_batch(x, y)[0] for _ in range(3)]
        runs.append((model.get_weights(), losses))
    assert runs[0][1] == runs[1][1]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], runs[1][0]))
    assert runs[0][1] != runs[2][1]
    assert not np.array_equal(runs[0][0][0], runs[2][0][0])


def test_set_seed_fixes_models_without_seed():
    mc.set_seed(123)
    try:
        w1 = mc.Sequential(tutorial_layers(), backend="numpy").get_weights()
        w2 = mc.Sequential(tutorial_layers(), backend="numpy").get_weights()
    finally:
        mc.set_seed(None)
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))


def test_training_loss_falls_by_half_on_a_learnable_task(tutorial_model):
    x, y = synthetic_digits(64, seed=1)
    model = tutorial_model(seed=0)
    first = model.train_on_batch(x, y)[0]
    for _ in range(30):
        last, acc = model.train_on_batch(x, y)
    assert last < first / 2, (first, last)


def test_compute_gradients_returns_host_arrays_in_weight_order_and_changes_nothing(tutorial_model):
    model = tutorial_model()
    x, y = synthetic_digits(8)
    before = model.get_weights()
    loss, grads = model.compute_gradients(x, y)
    assert isinstance(loss, float) and loss > 0
    assert [g.shape for g in grads] == [w.shape for w in before]
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # the layer exposes the same gradient after the backward pass, for a learner to inspect
    np.testing.assert_array_equal(model.layers[0].grads["kernel"], grads[0])


def test_float32_training_stays_float32(tutorial_model):
    model = tutorial_model()
    model.train_on_batch(*synthetic_digits(4))
    assert all(p.dtype == np.float32 for p in model.params)
    assert all(g.dtype == np.float32 for g in model.grads)
    assert model.predict(synthetic_digits(4)[0]).dtype == np.float32


def test_predict_batches_agree_with_one_batch(tutorial_model):
    model = tutorial_model()
    x, _ = synthetic_digits(10)
    np.testing.assert_allclose(model.predict(x, batch_size=3), model.predict(x, batch_size=10), rtol=1e-5)
    probs = model.predict(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model.predict_classes(x), probs.argmax(axis=1))


def test_sequential_add_builds_like_the_list_form():
    a = mc.Sequential(seed=3, backend="numpy")
    for layer in tutorial_layers():
        a.add(layer)
    b = mc.Sequential(tutorial_layers(), seed=3, backend="numpy")
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    assert all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


def test_wrong_input_shape_suggests_the_reshape(tutorial_model):
    with pytest.raises(ValueError, match=r"expected \(N, 28, 28, 1\).*reshape\(-1, 28, 28, 1\)"):
        tutorial_model().predict(np.zeros((2, 28, 28)))


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="known activations: linear, relu"):
        layers.Dense(3, activation="relux")
    model = mc.Sequential([layers.Dense(2, input_shape=(3,))], backend="numpy")
    with pytest.raises(ValueError, match="known losses: categorical_crossentropy"):
        model.compile(loss="mse")
    with pytest.raises(ValueError, match="known optimizers: adadelta, sgd, adam, adamw, rmsprop"):
        model.compile(optimizer="adamax")


def test_train_before_compile_is_a_clear_error():
    model = mc.Sequential([layers.Dense(2, input_shape=(3,))], backend="numpy")
    with pytest.raises(RuntimeError, match="compile"):
        model.train_on_batch(np.zeros((1, 3)), np.eye(2)[:1])


def test_float64_model_for_gradient_checks(tutorial_model):
    model = tutorial_model(dtype="float64")
    assert all(p.dtype == np.float64 for p in model.params)


def test_standalone_layers_return_fresh_arrays_model_layers_reuse_buffers():
    x1, x2 = np.ones((2, 3), np.float32), 2 * np.ones((2, 3), np.float32)
    alone = layers.Dense(4)
    alone.build((3,), mc.get_backend("numpy"), np.float32, np.random.default_rng(0))
    y1 = alone.forward(x1)
    y1_copy = y1.copy()
    alone.forward(x2)
    np.testing.assert_array_equal(y1, y1_copy)  # a learner's y1 is not overwritten
    model = mc.Sequential([layers.Dense(4, input_shape=(3,))], backend="numpy")
    first = model.forward(x1)
    second = model.forward(x2)
    assert np.shares_memory(first, second)  # inside a model: one buffer, reused (predict copies)


def test_summary_widens_its_first_column_for_long_layer_names():
    model = mc.Sequential([layers.Dense(4, input_shape=(3,)), layers.BatchNormalization()])
    rows = model.summary(print_fn=None).splitlines()
    row = next(r for r in rows if r.startswith("batch_normalization (BatchNormalization)"))
    assert row.split() == ["batch_normalization", "(BatchNormalization)", "(None,", "4)", "16"]
    assert row.index("(None,") == rows[2].index("Output Shape")  # the columns still line up
