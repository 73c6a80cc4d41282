"""The benchmarks' PyTorch twins of minicnn's recipes (the same layers, PyTorch's NCHW layout), written once for
``benchmarks.train``, ``benchmarks.gpu_check`` and ``benchmarks.gpu_graphs``."""

from __future__ import annotations


def torch_model(recipe: str = "tutorial"):
    """A fresh PyTorch ``nn.Sequential`` of ``recipe`` (``"tutorial"`` or ``"fashion_bn"``), on the CPU."""
    from torch import nn

    if recipe == "tutorial":
        return nn.Sequential(
            nn.Conv2d(1, 32, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.2),
            nn.Flatten(),
            nn.Linear(1024, 120),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def block(c_in, c_out):  # Keras's BatchNormalization: momentum 0.99 is PyTorch's 0.01, epsilon 1e-3
        return [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01),
            nn.ReLU(),
        ]

    return nn.Sequential(
        *block(1, 32),
        *block(32, 32),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        *block(32, 64),
        *block(64, 64),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(3136, 128, bias=False),
        nn.BatchNorm1d(128, eps=1e-3, momentum=0.01),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, 10),
    )
