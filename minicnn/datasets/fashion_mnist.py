"""Fashion-MNIST (Zalando Research): 60,000 training and 10,000 test images of clothes, 28x28 uint8, 10 classes."""

from __future__ import annotations

from ._loader import DatasetFile, DatasetSpec, load

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# Every read is checked by the sha256 of the DECOMPRESSED content (repackaged copies, such as Debian's
# dataset-fashion-mnist, recompress the files, so the md5 of the .gz that Zalando publishes differs for them).
SPEC = DatasetSpec(
    name="fashion_mnist",
    files=(
        DatasetFile(
            "train-images-idx3-ubyte.gz",
            (60000, 28, 28),
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ),
        DatasetFile(
            "train-labels-idx1-ubyte.gz",
            (60000,),
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "25c81989df183df01b3e8a0aad5dffbe",
        ),
        DatasetFile(
            "t10k-images-idx3-ubyte.gz",
            (10000, 28, 28),
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "bef4ecab320f06d8554ea6380940ec79",
        ),
        DatasetFile(
            "t10k-labels-idx1-ubyte.gz",
            (10000,),
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    ),
    mirrors=(
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    env_subdirs=("fashion_mnist",),  # the file names are MNIST's own: never look in $MINICNN_DATA itself
)


def load_data(path=None):
    """Load Fashion-MNIST as ``keras.datasets.fashion_mnist.load_data()`` does (same shapes as MNIST).

    Looks in ``path``, then ``$MINICNN_DATA/fashion_mnist``, then ``~/.minicnn/datasets/fashion_mnist``,
    and downloads there if needed.
    """
    return load(SPEC, path)
