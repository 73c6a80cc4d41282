"""Layers, one file each, forward and backward side by side."""

from .activations import Activation
from .base import Layer
from .conv2d import Conv2D
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .linear import LinearWithActivation
from .max_pooling import MaxPooling2D
from .pooling import Pooling2D

__all__ = ["Layer", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Activation", "LinearWithActivation",
           "Pooling2D"]
