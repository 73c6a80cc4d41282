"""MNIST handwritten digits (LeCun, Cortes, Burges): 60,000 training and 10,000 test images, 28x28 uint8."""

from __future__ import annotations

from ._loader import DatasetFile, DatasetSpec, load

SPEC = DatasetSpec(
    name="mnist",
    files=(
        DatasetFile(
            "train-images-idx3-ubyte.gz",
            (60000, 28, 28),
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        DatasetFile(
            "train-labels-idx1-ubyte.gz",
            (60000,),
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "d53e105ee54ea40749a09fcbcd1e9432",
        ),
        DatasetFile(
            "t10k-images-idx3-ubyte.gz",
            (10000, 28, 28),
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "9fb629c4189551a2d022fa330f9573f3",
        ),
        DatasetFile(
            "t10k-labels-idx1-ubyte.gz",
            (10000,),
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ),
    mirrors=("https://storage.googleapis.com/cvdf-datasets/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    env_subdirs=("", "mnist"),
)


def load_data(path=None):
    """Load MNIST as Keras's ``keras.datasets.mnist.load_data()`` does.

    Returns ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of shapes (60000, 28, 28), (60000,),
    (10000, 28, 28), (10000,).

    Looks for the four idx files (``train-images-idx3-ubyte.gz`` ...; gzip-compressed or not) in ``path``, then
    in ``$MINICNN_DATA`` (or ``$MINICNN_DATA/mnist``), then in ``~/.minicnn/datasets/mnist``; downloads them
    there if they are nowhere. The sha256 of each file's decompressed content is checked.

    Example:
        >>> from minicnn.datasets import mnist
        >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()   # doctest: +SKIP
        >>> x_train.shape, y_train[:5]                                  # doctest: +SKIP
        ((60000, 28, 28), array([5, 0, 4, 1, 9], dtype=uint8))
    """
    return load(SPEC, path)
