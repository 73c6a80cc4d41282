"""The pictures say what they show (counts, scales, predictions, legends, whole epochs), and the trace times
each layer as the median of several runs after a warm-up, with a loss section between the passes."""

import numpy as np
import pytest
from conftest import synthetic_digits

from minicnn.plotting import feature_maps_figure, gradient_norms_figure, history_figure, saliency_figure
from minicnn.trace import trace_step
from minicnn.train import tutorial_model
from minicnn.training import GradientNormRecorder


def _texts(fig):
    found = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        found += [ax.get_title()] + [t.get_text() for t in ax.texts]
    return found


@pytest.fixture(scope="module")
def trained():
    model = tutorial_model(seed=0, backend="numpy")
    x, y = synthetic_digits(64)
    recorder = GradientNormRecorder()
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[recorder], validation_split=0.25)
    return model, x, y, recorder, history


def test_feature_maps_say_how_many_maps_they_show_and_include_pooling(trained):
    model, x, _, _, _ = trained
    texts = _texts(feature_maps_figure(model, x[0]))
    assert "conv2d 24x24: first 16 of 32 maps" in texts and "conv2d_1 8x8: first 16 of 64 maps" in texts
    assert "max_pooling2d 12x12: first 16 of 32 maps" in texts and "max_pooling2d_1 4x4: first 16 of 64 maps" in texts
    everything = _texts(feature_maps_figure(model, x[0], max_maps=None))
    assert "conv2d_1 8x8: all 64 maps" in everything and "conv2d 24x24: first 32 of 32 maps" not in everything


def test_feature_maps_share_one_colour_scale_per_layer_unless_asked_not_to(trained):
    model, x, _, _, _ = trained
    from minicnn.trace import feature_maps

    conv = feature_maps(model, x[0])["conv2d"]
    fig = feature_maps_figure(model, x[0], max_maps=4)
    first_row = [ax.images[0] for ax in fig.axes[1:5]]
    assert all(im.get_clim() == (0.0, pytest.approx(float(conv.max()))) for im in first_row)
    assert len(fig.axes) > 1 + 4 * 4  # the maps and one colorbar per row
    own = feature_maps_figure(model, x[0], max_maps=4, shared_scale=False)
    clims = {own.axes[k].images[0].get_clim() for k in range(1, 5)}
    assert len(clims) == 4 and "(each on its own scale)" in " ".join(_texts(own))


def test_a_dead_map_is_marked(trained):
    model, x, _, _, _ = trained
    conv = model.layers[0]
    saved = conv.params["bias"].copy()
    try:
        conv.params["kernel"][..., 2] = 0
        conv.params["bias"][2] = -1.0  # map 2 is 0 everywhere after the ReLU
        fig = feature_maps_figure(model, x[0], max_maps=4)
        assert fig.axes[3].get_title() == "dead" and fig.axes[2].get_title() == "1"
    finally:
        conv.params["bias"][...] = saved


def test_saliency_names_the_prediction_its_probability_and_the_logit(trained):
    model, x, y, _, _ = trained
    p = model.predict(x[:1])[0]
    title = saliency_figure(model, x[0], 3)._suptitle.get_text()
    assert f"predicts {int(p.argmax())} with probability {p.max():.3f}" in title
    assert f"class 3 has {p[3]:.3f}" in title and "logit (its score before the softmax)" in title
    assert sum(1 for ax in saliency_figure(model, x[0], 3).axes if ax.get_label() == "<colorbar>") == 3


def test_gradient_norms_legend_sits_beside_the_curves_and_every_series_differs(trained):
    *_, recorder, _ = trained
    fig = gradient_norms_figure(recorder)
    ax = fig.axes[0]
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 > ax.get_window_extent().x1  # outside the axes: it covers no curve
    looks = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in ax.get_lines()}
    assert len(ax.get_lines()) == 10 and len(looks) == 10


def test_history_ticks_are_whole_epochs_on_a_short_run(trained):
    *_, history = trained
    fig = history_figure(history)
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks)


def test_the_trace_times_the_median_of_several_runs_after_a_warm_up():
    model = tutorial_model(seed=0, backend="numpy")
    x, y = synthetic_digits(8)
    trace = model.trace(x, y)
    assert trace.timing_runs == 5 and "the median of 5 runs of the step after one warm-up run" in str(trace)
    assert all(r["ms"] > 0 for r in trace.forward + trace.backward)


def test_the_trace_has_a_loss_section_between_the_passes():
    model = tutorial_model(seed=0, backend="numpy")
    x, y = synthetic_digits(8)
    trace = model.trace(x, y)
    text = str(trace)
    assert text.index("FORWARD") < text.index("LOSS") < text.index("BACKWARD")
    info = trace.loss_info
    assert info["gradient_shape"] == (8, 10) and info["gradient_formula"].startswith("dL/dZ = (P - Y) / N")
    assert f"value {trace.loss:.4f}" in text and "L = -(1/N) sum_n sum_k Y[n,k] log P[n,k]" in text
    assert info["gradient_stats"]["mean"] == pytest.approx(0.0, abs=1e-7)  # rows of P and Y both sum to 1


def test_the_repeated_runs_of_a_traced_step_leave_the_state_of_one_step():
    """Dropout masks and BatchNormalization's moving statistics: timing runs must not advance them."""
    from minicnn.recipes import build_model

    rng = np.random.default_rng(0)
    x, y = rng.random((4, 28, 28, 1), dtype=np.float32), np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    once, many = build_model("fashion_bn", seed=0, backend="numpy"), build_model("fashion_bn", seed=0, backend="numpy")
    a, b = trace_step(once, x, y, repeats=0), trace_step(many, x, y, repeats=3)
    assert a.loss == b.loss and a.timing_runs == 1 and b.timing_runs == 3
    for w1, w2 in zip(once.weights, many.weights):  # the updated weights and the moving statistics
        np.testing.assert_array_equal(w1, w2)
    assert [r["grad_norm"] for r in a.params] == [r["grad_norm"] for r in b.params]
