"""The figure helpers every picture shares: a matplotlib Figure on the Agg canvas (no screen needed, no pyplot
state), its colorbar, and its PNG written atomically or returned as bytes (for the interactive page)."""

from __future__ import annotations

import io

from .utils import atomic_write


def new_figure(width: float, height: float, dpi: int = 100):
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches drawn on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes, cropped to what it draws."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def save_figure(fig, path):
    """Write the figure as a PNG at ``path`` (atomically: a reader never sees half a file). Returns ``path``."""
    data = png_bytes(fig)
    atomic_write(path, lambda fh: fh.write(data))
    return path


def colorbar(fig, image, axes, label: str = ""):
    """A slim colorbar for ``image`` (what ``imshow`` returned) beside ``axes`` (one Axes or a list of them)."""
    bar = fig.colorbar(image, ax=axes, fraction=0.046, pad=0.02)
    bar.ax.tick_params(labelsize=7)
    if label:
        bar.set_label(label, fontsize=8)
    return bar
