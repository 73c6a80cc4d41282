"""What ``fit`` and ``evaluate`` show while they run: a live progress bar, one line per epoch, or nothing."""

from __future__ import annotations

import sys
import time


def is_terminal(file) -> bool:
    """Whether ``file`` is an interactive terminal (a live bar's carriage returns only make sense there)."""
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed file
        return False


class Progress:
    """Per-epoch display: a live tqdm bar (verbose=1), one line per epoch (verbose=2), or nothing (0).

    With verbose=1 on something that is not a terminal (a file, a pipe) there is no live bar: each epoch prints its
    title and one summary line, as Keras's progress bar does there, and no carriage-return frames."""

    def __init__(self, verbose, epochs, steps, file=None):
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.file = file or sys.stdout
        self.bar = None

    def begin(self, epoch=None):
        """Start an epoch's display (``epoch=None``: an evaluation, no "Epoch i/n" title)."""
        self.start = time.perf_counter()
        self.excluded = 0.0
        if self.verbose == 1:
            from tqdm.auto import tqdm

            if epoch is not None:
                print(f"Epoch {epoch + 1}/{self.epochs}", file=self.file)
            if is_terminal(self.file):  # leave=False: the summary line replaces the bar, not repeats it
                self.bar = tqdm(
                    total=self.steps,
                    file=self.file,
                    unit="step",
                    dynamic_ncols=True,
                    leave=False,
                    bar_format="{n_fmt}/{total_fmt} |{bar:24}| {elapsed}<{remaining}{postfix}",
                )

    @property
    def wants_values(self):
        return self.bar is not None

    def update(self, done, loss, acc):
        if self.bar is None:
            return
        elapsed = time.perf_counter() - self.start - self.excluded
        postfix = f"{1000 * elapsed / max(done, 1):.0f}ms/step - loss: {loss:.4f}"
        if acc is not None:
            postfix += f" - accuracy: {acc:.4f}"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(done - self.bar.n)

    def exclude(self, seconds):
        """Leave ``seconds`` (spent compiling kernels) out of the rate per step and the time left."""
        self.excluded += seconds
        if self.bar is not None:
            self.bar.last_print_t += seconds  # tqdm's rate (hence its estimate) divides by time since last_print_t

    def note(self, text):
        """A line of its own, above a live bar (or, without one, where the epoch lines go)."""
        if self.bar is not None:
            self.bar.write(text, file=self.file)
        elif self.verbose:
            print(text, file=self.file)

    def abandon(self):
        """Close a live bar without a summary line (training stopped in the middle of an epoch)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def end(self, epoch, logs):
        seconds = time.perf_counter() - self.start
        text = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.verbose == 1 or (self.verbose == 2 and epoch is None):
            print(f"{self.steps}/{self.steps} - {seconds:.0f}s - {text}", file=self.file)
        elif self.verbose == 2:
            print(
                f"Epoch {epoch + 1}/{self.epochs} - {seconds:.0f}s - {1000 * seconds / self.steps:.0f}ms/step - {text}",
                file=self.file,
            )
