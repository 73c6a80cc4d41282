"""Catalogue, tests that catch real slips: each pins a number that a plausible one-line bug would change and that
no other test pinned (the loss's clip bounds, dropout's scale, the download's checksum, Numba's bias-gradient path
for many rows, EarlyStopping's patience)."""

import gzip
import hashlib
import http.server
import threading
from functools import partial

import numpy as np
import pytest

import minicnn as mc
from minicnn import layers
from minicnn.callbacks import EarlyStopping
from minicnn.losses import CategoricalCrossentropy


def _backends():
    names = []
    for name in ("numpy", "numba", "cupy"):
        try:
            mc.get_backend(name)
            names.append(name)
        except (ImportError, RuntimeError):
            pass
    return names


# --- the loss's clip bounds: [1e-7, 1 - 1e-7] ---------------------------------------------------------------
def test_a_saturated_correct_prediction_costs_minus_log_of_one_minus_epsilon():
    p = np.array([[1.0, 0.0, 0.0]], np.float64)
    y = np.array([[1.0, 0.0, 0.0]], np.float64)
    loss = float(CategoricalCrossentropy().forward(np, p, y))
    assert loss == pytest.approx(-np.log(1 - 1e-7), rel=1e-6)  # clipped at 1 - 1e-7, not at 1 (0 loss)


def test_a_saturated_wrong_prediction_costs_minus_log_epsilon():
    p = np.array([[1.0, 0.0, 0.0]], np.float64)
    y = np.array([[0.0, 1.0, 0.0]], np.float64)
    assert float(CategoricalCrossentropy().forward(np, p, y)) == pytest.approx(-np.log(1e-7), rel=1e-9)


def test_the_gradient_is_zero_where_the_clip_holds_a_probability_above_one_minus_epsilon():
    # the clip is flat there: a mask that lost its upper bound would give -y/q = -1 for the saturated class
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.25, 0.25]], np.float64)
    y = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], np.float64)
    grad = CategoricalCrossentropy().backward(np, p, y)
    np.testing.assert_array_equal(grad[0], 0.0)
    assert grad[1, 0] == pytest.approx(-1 / (2 * 0.5) + 1 / 2 * 1.0, rel=1e-12)  # inside: -y/(N q) + sum/total


def test_the_sparse_loss_clips_with_the_epsilon_it_was_given():
    from minicnn.losses import SparseCategoricalCrossentropy

    p = np.array([[1.0, 0.0, 0.0]], np.float64)
    loss = float(SparseCategoricalCrossentropy(epsilon=0.1).forward(np, p, np.array([1])))
    assert loss == pytest.approx(-np.log(0.1), rel=1e-9)


def test_the_gradient_through_the_normalisation_matches_finite_differences_for_rows_not_summing_to_one():
    # Keras divides p by its row sum first; softmax outputs sum to 1, where p/S and p*S agree: use rows summing to 2
    rng = np.random.default_rng(0)
    p = rng.uniform(0.1, 0.9, (3, 4))
    p *= 2 / p.sum(axis=1, keepdims=True)
    y = np.eye(4)[[0, 2, 3]]
    loss = CategoricalCrossentropy()
    grad = loss.backward(np, p, y)
    numeric = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        d = np.zeros_like(p)
        d[i] = 1e-6
        numeric[i] = (float(loss.forward(np, p + d, y)) - float(loss.forward(np, p - d, y))) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


# --- dropout scales kept values by 1/(1-rate), not 1/rate -------------------------------------------------------
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("rate", [0.2, 0.3])
def test_dropout_scales_kept_values_by_one_over_one_minus_rate(backend, rate):
    model = mc.Sequential([layers.Dropout(rate, input_shape=(4000,))], seed=0, backend=backend)
    be = model.backend
    out = be.to_numpy(model.forward(be.asarray(np.ones((2, 4000), np.float32)), training=True))
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 1 / (1 - rate), rtol=1e-6)
    assert abs(kept.size / out.size - (1 - rate)) < 0.03  # and keeps about 1 - rate of them


@pytest.mark.parametrize("backend", _backends())
def test_the_dropout_mask_kernel_scales_by_one_over_one_minus_rate(backend):
    be = mc.get_backend(backend)
    uniform = be.asarray(np.linspace(0, 1, 1000, endpoint=False, dtype=np.float32))
    mask = be.to_numpy(be.dropout_mask(uniform, 0.2))
    np.testing.assert_allclose(np.unique(mask), [0.0, 1.25], rtol=1e-6)
    assert (mask == 0).sum() == 200  # u < rate dropped: exactly the first fifth


# --- the download path's checksum -------------------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirrors(tmp_path):
    """Two fake mirrors on a local HTTP server: /bad/ serves a different file, /good/ the right one."""
    content = b"\x00\x00\x08\x01\x00\x00\x00\x03abc"  # an idx1 file of 3 bytes
    for folder, payload in (("bad", b"\x00\x00\x08\x01\x00\x00\x00\x03xyz"), ("good", content)):
        (tmp_path / "www" / folder).mkdir(parents=True)
        (tmp_path / "www" / folder / "f-idx1-ubyte.gz").write_bytes(gzip.compress(payload))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hashlib.sha256(content).hexdigest()
    server.shutdown()


def _spec(mirror_urls, sha256):
    from minicnn.datasets._loader import DatasetFile, DatasetSpec

    return DatasetSpec("fake", (DatasetFile("f-idx1-ubyte.gz", (3,), sha256, None),), tuple(mirror_urls), ("",))


def test_a_download_that_fails_its_checksum_is_removed_and_the_next_mirror_used(mirrors, tmp_path, monkeypatch):
    pytest.importorskip("pooch")
    from minicnn.datasets._loader import download
    from minicnn.datasets.idx import read_bytes

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    url, sha = mirrors
    (path,) = download(_spec([url + "/bad/", url + "/good/"], sha), progress=False)
    assert hashlib.sha256(read_bytes(path)).hexdigest() == sha


def test_a_download_whose_every_mirror_fails_its_checksum_is_an_error(mirrors, tmp_path, monkeypatch):
    pytest.importorskip("pooch")
    from minicnn.datasets import DataFileError
    from minicnn.datasets._loader import download

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    url, sha = mirrors
    with pytest.raises(DataFileError, match="does not match sha256"):
        download(_spec([url + "/bad/"], sha), progress=False)
    assert not (tmp_path / "home" / ".minicnn" / "datasets" / "fake" / "f-idx1-ubyte.gz").exists()


# --- Numba's bias gradient for 4,096 rows or more (a separate parallel path) -------------------------------------
@pytest.mark.parametrize("rows", [4096, 5001])
def test_numbas_bias_gradient_over_many_rows_equals_the_plain_sum(rows):
    try:
        backend = mc.get_backend("numba")
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"numba unavailable: {err}")
    dz = np.random.default_rng(rows).standard_normal((rows, 37)).astype(np.float32)
    out = np.empty(37, np.float32)
    backend.bias_gradient(dz, out)
    np.testing.assert_allclose(out, dz.astype(np.float64).sum(axis=0), rtol=1e-4, atol=1e-4)


# --- EarlyStopping with patience 2: two epochs without improvement, then stop --------------------------------------
class _Model:
    stop_training = False


@pytest.mark.parametrize("patience,stops_after", [(1, 2), (2, 3), (3, 4)])
def test_early_stopping_stops_after_patience_epochs_without_improvement(patience, stops_after):
    stopper, model = EarlyStopping(monitor="loss", patience=patience), _Model()
    stopper.model = model
    stopper.on_train_begin()
    for epoch, loss in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        stopper.on_epoch_end(epoch, {"loss": loss})
        if model.stop_training:
            break
    assert epoch + 1 == stops_after
