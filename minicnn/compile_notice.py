"""A line while the backend compiles its kernels (Numba's first run: once, then cached on disk), and that time
kept out of the progress bar's estimate of the time left."""

from __future__ import annotations


class CompileNotice:
    """For one ``fit``: when ``backend`` starts compiling, ``progress`` shows "compiling numba kernels (once; cached
    afterwards)..."; after the step that compiled, "... compiled in 21.3 s", and the progress bar's rate and time
    left leave those seconds out (a newcomer's first step would otherwise predict minutes for a 40-second epoch).
    Silent with ``verbose=0``."""

    def __init__(self, backend, progress, verbose):
        self.backend, self.progress = backend, progress
        self.last = backend.compile_seconds()
        self.since = None  # compile seconds when the notice was shown, until its duration is
        self.closed = False
        if verbose:
            backend.on_compile_start(self._announce)

    def _announce(self):
        if not self.closed:
            self.since = self.last
            self.progress.note(f"compiling {self.backend.name} kernels (once; cached afterwards)...")

    def after_step(self):
        """Call after each training step: accounts for the compiling it did."""
        now = self.backend.compile_seconds()
        if now > self.last:
            self.progress.exclude(now - self.last)
            self.last = now
        if self.since is not None:
            self.progress.note(f"... compiled in {now - self.since:.1f} s")
            self.since = None

    def close(self):
        """The end of ``fit``: forget the notice when nothing was compiled."""
        self.closed = True
        self.backend.on_compile_start(None)
