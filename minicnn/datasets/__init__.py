"""Data sets: MNIST and Fashion-MNIST, and a reader for any idx-format file."""

from . import fashion_mnist, mnist
from ._loader import DatasetFile, DatasetSpec, load
from .idx import DataFileError, read_idx, read_idx_dir

__all__ = ["mnist", "fashion_mnist", "read_idx", "read_idx_dir", "DataFileError", "DatasetFile", "DatasetSpec", "load"]
