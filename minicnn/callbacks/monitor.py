"""What the callbacks that watch a metric share (Keras's MonitorCallback): which way is better, and by how much."""

from __future__ import annotations

import math


class Monitor:
    """A mixin: ``monitor`` (a key of the epoch's logs), ``mode`` ("min", "max" or "auto": loss and val_loss go down,
    accuracy and val_accuracy up) and ``min_delta`` (an improvement must beat the reference by more than this)."""

    def init_monitor(self, monitor: str, mode: str, min_delta: float, best: float | None = None) -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            name = monitor.removeprefix("val_")
            if name == "loss":
                mode = "min"
            elif name in ("accuracy", "acc"):
                mode = "max"
            else:
                raise ValueError(f"cannot tell whether {monitor!r} should go up or down: pass mode='min' or 'max'")
        if not math.isfinite(float(min_delta)):
            raise ValueError(f"min_delta must be a finite number, got {min_delta!r}")
        self.monitor, self.mode, self.min_delta, self.best = monitor, mode, abs(float(min_delta)), best

    def is_improvement(self, value: float, reference: float | None) -> bool:
        """``value < reference - min_delta`` (mode "min") or ``value > reference + min_delta`` ("max"); True when
        there is no reference yet."""
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def monitored(self, logs) -> float:
        """The monitored value in ``logs``, or a KeyError naming what the logs hold."""
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(
                f"{type(self).__name__} monitors {self.monitor!r}, but the epoch's logs hold "
                f"{', '.join(logs) or 'nothing'}" + (" (no validation data?)" if "val_" in self.monitor else "")
            )
        return float(logs[self.monitor])
