"""minicnn: a convolutional-network engine written from scratch on NumPy (+ Numba) and CuPy.

Every layer's forward and backward pass is written by hand, readable, and checked against numerical
gradients and against Keras.
"""

from . import (
    datasets,
    gradcheck,
    initializers,
    layers,
    losses,
    models,
    optimizers,
    plotting,
    regularizers,
    training,
    utils,
)
from .backend import available_backends, get_backend, set_backend
from .backend.cpu_threads import get_num_threads, set_num_threads
from .model import Sequential
from .seeding import set_seed
from .utils import to_categorical

__version__ = "0.1.0"

__all__ = [
    "Sequential",
    "layers",
    "losses",
    "optimizers",
    "regularizers",
    "initializers",
    "datasets",
    "training",
    "plotting",
    "models",
    "gradcheck",
    "utils",
    "to_categorical",
    "set_backend",
    "get_backend",
    "available_backends",
    "set_seed",
    "set_num_threads",
    "get_num_threads",
    "__version__",
]
