"""Recipes: a model, its optimizer and its training settings, by name, for the commands and the benchmarks.

- ``tutorial``: the R keras MNIST tutorial's CNN (186,110 weights), Adadelta with learning rate 1.0, 10 epochs;
- ``fashion_bn``: a small BatchNormalization CNN for Fashion-MNIST, Adam with learning rate 0.001, 15 epochs:
  two blocks of [Conv 3x3 -> BatchNormalization -> ReLU] x 2 -> MaxPool 2x2 -> Dropout(0.25), then
  Dense(128) -> BatchNormalization -> ReLU -> Dropout(0.5) -> Dense(10, softmax). The convolutions before a
  BatchNormalization have no bias: its beta does that job.

Both take 28x28x1 images in [0, 1] and one-hot labels of 10 classes, batch 128, validation_split 0.2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import layers as L
from . import optimizers
from .model import Sequential


def tutorial_layers() -> list:
    return [
        L.Conv2D(32, (5, 5), activation="relu", input_shape=(28, 28, 1)),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(64, (5, 5), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Dropout(0.2),
        L.Flatten(),
        L.Dense(120, activation="relu"),
        L.Dropout(0.5),
        L.Dense(84, activation="relu"),
        L.Dense(10, activation="softmax"),
    ]


def fashion_bn_layers() -> list:
    def conv_bn_relu(filters, **kwargs):
        return [
            L.Conv2D(filters, (3, 3), padding="same", use_bias=False, **kwargs),
            L.BatchNormalization(),
            L.Activation("relu"),
        ]

    return [
        *conv_bn_relu(32, input_shape=(28, 28, 1)),
        *conv_bn_relu(32),
        L.MaxPooling2D((2, 2)),
        L.Dropout(0.25),
        *conv_bn_relu(64),
        *conv_bn_relu(64),
        L.MaxPooling2D((2, 2)),
        L.Dropout(0.25),
        L.Flatten(),
        L.Dense(128, use_bias=False),
        L.BatchNormalization(),
        L.Activation("relu"),
        L.Dropout(0.5),
        L.Dense(10, activation="softmax"),
    ]


@dataclass(frozen=True)
class Recipe:
    """A named model with its training settings."""

    name: str
    layers: Callable[[], list]  # builds fresh layers
    optimizer: str  # an optimizer's name in minicnn.optimizers
    learning_rate: float
    epochs: int
    dataset: str  # the data set it was made for
    description: str


RECIPES = {
    "tutorial": Recipe(
        "tutorial",
        tutorial_layers,
        "adadelta",
        1.0,
        10,
        "mnist",
        "the R keras MNIST tutorial's CNN, Adadelta (learning rate 1.0)",
    ),
    "fashion_bn": Recipe(
        "fashion_bn",
        fashion_bn_layers,
        "adam",
        0.001,
        15,
        "fashion_mnist",
        "a BatchNormalization CNN for Fashion-MNIST, Adam (learning rate 0.001)",
    ),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}") from None


def build_model(recipe="tutorial", seed=None, backend=None, optimizer=None, learning_rate=None, dtype="float32"):
    """The recipe's model, compiled with its optimizer (or ``optimizer``, by name) at its learning rate (or
    ``learning_rate``); categorical cross-entropy and accuracy."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    name = optimizer or recipe.optimizer
    opt = optimizers.get(name)  # its defaults (an unknown name is a ValueError naming it)
    if learning_rate is None and name == recipe.optimizer:
        learning_rate = recipe.learning_rate
    if learning_rate is not None:
        opt = type(opt)(learning_rate=learning_rate)
    model = Sequential(recipe.layers(), seed=seed, backend=backend, dtype=dtype)
    model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    return model
