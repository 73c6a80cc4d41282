"""Ctrl-C that stops training cleanly on every backend.

Python turns Ctrl-C (SIGINT) into a ``KeyboardInterrupt`` raised wherever the interpreter happens to be. Inside a
Numba kernel that is the worst place: Numba's dispatcher then returns a result with an exception set, and Python
reports ``SystemError: CPUDispatcher(...) returned a result with an exception set`` instead of the interrupt.
So while ``fit`` runs, :class:`CtrlC` replaces the handler by one that only notes the key press; ``fit`` checks
the note between steps and stops there (a second Ctrl-C interrupts at once, as usual). The earlier handler is
restored when training ends. Signal handlers belong to the main thread: in any other thread nothing changes.
"""

from __future__ import annotations

import signal
import threading


def is_interrupt(err: BaseException) -> bool:
    """Whether ``err`` is a Ctrl-C: a KeyboardInterrupt, or the SystemError that Numba raises around one."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        if not isinstance(err, SystemError):
            return False
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class CtrlC:
    """A context manager: inside it, the first Ctrl-C sets :attr:`pressed` instead of raising; :meth:`check`
    raises ``KeyboardInterrupt`` at a point chosen by the caller (between two training steps)."""

    def __init__(self, enabled: bool = True):
        self.pressed = False
        self.enabled = enabled  # off: Ctrl-C raises where it lands, as usual (e.g. across MPI ranks, which
        self._previous = None  # must stop at the same step: noting it per rank could leave one waiting)

    def _note(self, signum, frame):
        if self.pressed:  # pressed twice: the user insists, stop wherever we are
            raise KeyboardInterrupt
        self.pressed = True

    def __enter__(self):
        self.pressed = False
        if self.enabled and threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is signal.default_int_handler:  # leave a handler someone else installed alone
                self._previous = previous
                signal.signal(signal.SIGINT, self._note)
        return self

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` when Ctrl-C was pressed since entering."""
        if self.pressed:
            self.pressed = False
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False
