"""Keras's one-batch methods of a model: ``train_on_batch``, ``test_on_batch``, ``predict_on_batch`` (a mixin of
:class:`minicnn.training.Trainer`, which provides ``train_step``, ``evaluate`` and the data checks they use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import sample_weights as weights_module

if TYPE_CHECKING:
    from .annotations import ArrayLike


def results(loss, acc, return_dict: bool):
    """``[loss, accuracy]`` as floats, or ``{"loss": ..., "accuracy": ...}`` (Keras's ``return_dict``)."""
    return {"loss": float(loss), "accuracy": float(acc)} if return_dict else [float(loss), float(acc)]


class BatchMethods:
    """One step of training, one evaluation, one forward pass, each on a single batch."""

    def train_on_batch(
        self,
        x: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        class_weight: dict[int, float] | None = None,
        return_dict: bool = False,
    ) -> list[float] | dict[str, float]:
        """One step of training on one batch: returns ``[loss, accuracy]`` measured before the update
        (``return_dict=True``: ``{"loss": ..., "accuracy": ...}``); ``sample_weight``/``class_weight`` as in fit."""
        self.require_compiled("train_on_batch")
        xb = self.prepare_inputs(x)
        w, _ = weights_module.fit_weights(y, xb.shape[0], xb.shape[0], sample_weight, class_weight)
        loss, acc = self.train_step(
            xb,
            self.prepare_targets(y, xb.shape[0]),
            sample_weight=weights_module.to_backend(self.backend, self.dtype, w),
        )
        return results(loss, acc, return_dict)

    def test_on_batch(
        self, x: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None, return_dict: bool = False
    ) -> list[float] | dict[str, float]:
        """``[loss, accuracy]`` on one batch, dropout off, nothing updated (``return_dict``: as a dict)."""
        self.require_compiled("test_on_batch")
        return self.evaluate(
            x, y, batch_size=max(1, len(x)), verbose=0, sample_weight=sample_weight, return_dict=return_dict
        )

    def predict_on_batch(self, x: ArrayLike) -> np.ndarray:
        """The outputs for one batch ``x`` (dropout off), as a host array: one forward pass, no batching."""
        return self.backend.to_numpy(self.forward(self.prepare_inputs(x), training=False))
