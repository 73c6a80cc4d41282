"""The idx reader and the MNIST loader: the facts in ../shared/data/mnist/README.md, and clear errors."""

import gzip
import os
import struct

import numpy as np
import pytest

from minicnn.datasets import DataFileError, mnist, read_idx, read_idx_dir

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data", "mnist")


def _real_mnist_dir():
    for d in (os.environ.get("MINICNN_DATA"), SHARED):
        if d and os.path.isfile(os.path.join(d, "t10k-labels-idx1-ubyte.gz")):
            return d
    if os.environ.get("MINICNN_REQUIRE_DATA") == "1":
        pytest.fail("MINICNN_REQUIRE_DATA=1 but the MNIST files are not in $MINICNN_DATA or ../shared/data/mnist")
    pytest.skip("the real MNIST files are absent (set MINICNN_DATA to their folder)")


@pytest.fixture(scope="module")
def real_mnist():
    return mnist.load_data(_real_mnist_dir())


def test_mnist_shapes_and_dtypes_like_keras(real_mnist):
    (x_train, y_train), (x_test, y_test) = real_mnist
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == (
        (60000, 28, 28),
        (60000,),
        (10000, 28, 28),
        (10000,),
    )
    assert all(a.dtype == np.uint8 for a in (x_train, y_train, x_test, y_test))


def test_mnist_known_facts(real_mnist):
    (x_train, y_train), (_, y_test) = real_mnist
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    pixels = x_train / 255.0
    assert pixels.mean() == pytest.approx(0.1307, abs=5e-5)
    assert pixels.std() == pytest.approx(0.3081, abs=5e-5)


def test_mnist_found_through_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("MINICNN_DATA", _real_mnist_dir())
    monkeypatch.setenv("HOME", str(tmp_path))  # an empty cache: the env folder must be the one used
    (_, y_train), _ = mnist.load_data()
    assert y_train[0] == 5


def _idx_bytes(array, type_code=0x08):
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1" if type_code == 0x08 else ">i4").tobytes()


def test_read_idx_roundtrip_gzip_and_plain(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(_idx_bytes(a))
    (tmp_path / "b-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(a)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "b-idx3-ubyte.gz"), a)
    both = read_idx_dir(tmp_path)
    assert set(both) == {"a-idx3-ubyte", "b-idx3-ubyte"}
    big = np.array([70000, -3], dtype=np.int64)
    (tmp_path / "c-idx1-int").write_bytes(_idx_bytes(big, 0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "c-idx1-int"), big)


def test_wrong_magic_names_file_and_bytes(tmp_path):
    f = tmp_path / "x-idx1-ubyte"
    f.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataFileError, match=r"x-idx1-ubyte: wrong idx magic number 12340801"):
        read_idx(f)


def test_truncated_data_says_expected_and_found(tmp_path):
    a = np.zeros((10, 4), dtype=np.uint8)
    f = tmp_path / "t-idx2-ubyte"
    f.write_bytes(_idx_bytes(a)[:-5])
    expected = r"t-idx2-ubyte: header says shape \(10, 4\) \(52 bytes.*47 bytes.*truncated"
    with pytest.raises(DataFileError, match=expected):
        read_idx(f)


def test_truncated_gzip_is_reported(tmp_path):
    f = tmp_path / "g-idx1-ubyte.gz"
    f.write_bytes(gzip.compress(_idx_bytes(np.zeros(1000, np.uint8)))[:-30])
    with pytest.raises(DataFileError, match=r"g-idx1-ubyte.gz: corrupt or truncated gzip"):
        read_idx(f)


def test_checksum_and_shape_mismatch(tmp_path):
    f = tmp_path / "s-idx1-ubyte"
    f.write_bytes(_idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DataFileError, match="checksum mismatch.*expected 00ff"):
        read_idx(f, sha256="00ff")
    with pytest.raises(DataFileError, match=r"expected an array of shape \(6,\), found \(5,\)"):
        read_idx(f, shape=(6,))


def test_wrong_count_in_a_data_set_folder_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    for spec_file in mnist.SPEC.files:
        shape = (3,) + spec_file.shape[1:]
        (tmp_path / spec_file.name).write_bytes(gzip.compress(_idx_bytes(np.zeros(shape, np.uint8))))
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte.gz: checksum mismatch"):
        mnist.load_data(tmp_path)


def test_missing_files_without_internet_say_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "nothing"))
    from minicnn.datasets import _loader

    def offline(spec, progress=True, path=None):
        raise DataFileError(_loader.missing_message(spec, ["https://mirror/x: no internet"], path))

    monkeypatch.setattr(_loader, "download", offline)
    with pytest.raises(DataFileError) as err:
        mnist.load_data(tmp_path / "given")
    text = str(err.value)
    for needed in (
        "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "MINICNN_DATA",
        str(tmp_path / "given"),
        os.path.join(".minicnn", "datasets", "mnist"),
        "no internet",
    ):
        assert needed in text


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(DataFileError, match="nope-idx1-ubyte: cannot be read"):
        read_idx(tmp_path / "nope-idx1-ubyte")
