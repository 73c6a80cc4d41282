"""The optimizer's state in Keras 3's layout (``/optimizer/vars`` of model.weights.h5), written so that Keras, opening
a minicnn file, continues training where minicnn stopped (the same moments, the same step count).

Keras's optimizer variables are: ``iteration`` (int64), ``learning_rate`` (float32), then its slots for the model's
trainable weights, in groups as each optimizer creates them. Slots made together are interleaved weight by weight
(Adam: m_0, v_0, m_1, v_1, ...); groups follow one another (RMSprop: every velocity, then every momentum)::

    Adadelta   [accumulated_grad, accumulated_delta]
    Adam(W)    [momentums, velocities], then [velocity_hats] with amsgrad
    RMSprop    [velocities], then [momentums] if momentum > 0, then [average_gradients] if centered
    SGD        [velocity] if momentum > 0 (Keras keeps none without momentum)

minicnn's slots hold the same quantities under Keras's update rules (see minicnn/optimizers/), so they are copied
as they are, both ways (before the first update: zeros, a fresh optimizer's state). Reading, a state of another
layout (another optimizer, other settings) is skipped with a warning: the optimizer then starts afresh.
"""

from __future__ import annotations

import numpy as np


def slot_groups(optimizer) -> list[tuple[str, ...]] | None:
    """The groups of slot names in Keras's order for ``optimizer``, or None for an optimizer Keras does not have."""
    kind = type(optimizer).__name__
    if kind == "Adadelta":
        return [("accumulated_grad", "accumulated_delta")]
    if kind in ("Adam", "AdamW"):
        return [("momentums", "velocities")] + ([("velocity_hats",)] if optimizer.amsgrad else [])
    if kind == "RMSprop":
        return [(name,) for name in optimizer.slot_names]  # velocities[, momentums][, average_gradients]
    if kind == "SGD":
        return [("velocity",)] if optimizer.momentum else []
    return None


def keras_optimizer_variables(optimizer, trainable, to_numpy) -> list[np.ndarray] | None:
    """The arrays Keras's optimizer would hold for the ``trainable`` weights, in its order: before the first update,
    zeros (a fresh optimizer's state); None when the state was built for another set of weights (a layer frozen
    after training): then nothing is written and Keras starts its optimizer afresh."""
    groups = slot_groups(optimizer)
    if groups is None:
        return None
    if optimizer.iterations == 0:
        slots = {name: [np.zeros(p.shape, p.dtype) for p in trainable] for group in groups for name in group}
    else:
        slots = {name: getattr(optimizer, name, None) for group in groups for name in group}
    if any(
        values is None or [tuple(v.shape) for v in values] != [tuple(p.shape) for p in trainable]
        for values in slots.values()
    ):
        return None
    arrays = [np.array(optimizer.iterations, np.int64), np.array(optimizer.learning_rate, np.float32)]
    for group in groups:
        for k in range(len(trainable)):
            arrays += [to_numpy(slots[name][k]) for name in group]
    return arrays


def keras_layout(optimizer, trainable) -> list[tuple[tuple, np.dtype]] | None:
    """The (shape, dtype) of each array of Keras's optimizer state for the ``trainable`` weights, in its order."""
    groups = slot_groups(optimizer)
    if groups is None:
        return None
    layout = [((), np.dtype(np.int64)), ((), np.dtype(np.float32))]
    for group in groups:
        for p in trainable:
            layout += [(tuple(p.shape), np.dtype(p.dtype))] * len(group)
    return layout


def set_from_keras(optimizer, arrays, trainable) -> None:
    """Restore ``optimizer``'s step count and slots from Keras's arrays (laid out as :func:`keras_layout` says)."""
    rest, slots = iter(arrays[2:]), {}
    for group in slot_groups(optimizer):
        for name in group:
            slots[name] = [None] * len(trainable)
        for k in range(len(trainable)):
            for name in group:
                slots[name][k] = next(rest)
    optimizer.set_state({"iterations": int(arrays[0]), **slots}, trainable)
