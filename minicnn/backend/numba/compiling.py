"""The time Numba spends compiling kernels, measured through Numba's event API, and a notice when it starts.

A fresh install compiles every kernel a model uses at its first call (about 20 s for the tutorial on a 2-core
machine, most of it in the parallel convolution kernels; see docs/performance.md, "The first run"); afterwards
``cache=True`` loads them from disk. The trainer shows a line while that happens and keeps the time out of the
progress bar's estimate (:class:`minicnn.compile_notice.CompileNotice`).
"""

from __future__ import annotations

import time

from numba.core import event


class CompileClock(event.Listener):
    """Listens to ``numba:compile`` events: ``seconds`` adds up the outermost compilations (a kernel compiles the
    helpers it calls inside its own), and ``notice`` (when set) is called once, at the start of the next one."""

    def __init__(self):
        self.seconds = 0.0
        self.notice = None
        self._depth = 0
        self._started = 0.0

    def on_start(self, ev):
        if self._depth == 0:
            self._started = time.perf_counter()
            notice, self.notice = self.notice, None
            if notice is not None:
                notice()
        self._depth += 1

    def on_end(self, ev):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._started


CLOCK = CompileClock()
event.register("numba:compile", CLOCK)
