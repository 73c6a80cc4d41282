"""Layers, one file each, forward and backward side by side."""

from .activations import Activation
from .average_pooling import AveragePooling2D
from .base import Layer
from .batch_norm import BatchNormalization
from .conv2d import Conv2D
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .global_average_pooling import GlobalAveragePooling2D
from .global_max_pooling import GlobalMaxPooling2D
from .global_pooling import GlobalPooling2D
from .linear import LinearWithActivation
from .max_pooling import MaxPooling2D
from .pooling import Pooling2D
from .reshape import Reshape
from .zero_padding import ZeroPadding2D

__all__ = [
    "Layer",
    "Conv2D",
    "MaxPooling2D",
    "Dropout",
    "Flatten",
    "Dense",
    "Activation",
    "LinearWithActivation",
    "Pooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "GlobalPooling2D",
    "ZeroPadding2D",
    "Reshape",
    "BatchNormalization",
]
