"""The Fashion-MNIST loader against the facts in ../shared/data/fashion_mnist/README.md."""

import os

import numpy as np
import pytest

from minicnn.datasets import DataFileError, fashion_mnist

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data", "fashion_mnist")


def fashion_dir():
    env = os.environ.get("MINICNN_DATA")
    for d in (
        os.path.join(env, "fashion_mnist") if env else None,
        os.path.join(env, "..", "fashion_mnist") if env else None,
        SHARED,
    ):
        if d and os.path.isfile(os.path.join(d, "t10k-labels-idx1-ubyte.gz")):
            return d
    if os.environ.get("MINICNN_REQUIRE_DATA") == "1":
        pytest.fail("MINICNN_REQUIRE_DATA=1 but the Fashion-MNIST files are not in ../shared/data/fashion_mnist")
    pytest.skip("the real Fashion-MNIST files are absent")


@pytest.fixture(scope="module")
def fashion():
    return fashion_mnist.load_data(fashion_dir())


def test_shapes_and_dtypes_like_keras(fashion):
    (x, y), (xt, yt) = fashion
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert y.shape == (60000,) and yt.shape == (10000,)
    assert x.dtype == y.dtype == np.uint8


def test_known_facts(fashion):
    (x, y), (_, yt) = fashion
    assert list(y[:10]) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert list(yt[:10]) == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert (np.bincount(y) == 6000).all() and (np.bincount(yt) == 1000).all()
    pixels = x / 255.0
    assert abs(pixels.mean() - 0.2860) < 5e-5 and abs(pixels.std() - 0.3530) < 5e-5


def test_a_changed_file_fails_its_checksum(tmp_path):
    import shutil

    src = fashion_dir()
    for name in os.listdir(src):
        if name.endswith(".gz"):
            shutil.copy(os.path.join(src, name), tmp_path / name)
    import gzip

    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # one label changed, still a valid idx file
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataFileError, match="t10k-labels"):
        fashion_mnist.load_data(tmp_path)
