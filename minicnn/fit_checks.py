"""Checks of ``fit``'s ``callbacks`` argument, made before the first epoch rather than after it."""

from __future__ import annotations

from .callbacks import Callback, EarlyStopping


def callbacks_checked(callbacks, has_validation: bool) -> list:
    """``callbacks`` as a list, checked: a list (or tuple) of :class:`Callback` objects, and every EarlyStopping
    monitoring a value the epochs will report (``val_*`` only with validation data)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        raise TypeError(
            f"callbacks must be a list of callbacks, got one {type(callbacks).__name__}: "
            f"pass callbacks=[{type(callbacks).__name__}(...)]"
        )
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of callbacks, got {type(callbacks).__name__}")
    hooks = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_batch_end", "on_train_end")
    for cb in callbacks:
        if not isinstance(cb, Callback) and not all(hasattr(cb, hook) for hook in hooks):
            raise TypeError(f"callbacks must hold Callback objects (minicnn.callbacks), got {cb!r}")
    logged = ["loss", "accuracy"] + (["val_loss", "val_accuracy"] if has_validation else [])
    for cb in callbacks:
        if isinstance(cb, EarlyStopping) and cb.monitor not in logged:
            hint = "; give fit validation_split= or validation_data=" if cb.monitor.startswith("val_") else ""
            raise ValueError(
                f"EarlyStopping monitors {cb.monitor!r}, which this fit does not report (it reports "
                f"{', '.join(logged)}){hint}"
            )
    return list(callbacks)
