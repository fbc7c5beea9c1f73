"""Plots, one module per kind of result (e.g. ``lens.plots.logit_lens``).

Figures are built with ``matplotlib.figure.Figure`` and its Agg canvas, never through
``pyplot``: no GUI backend is needed or switched, and no global figure state is left behind.
Helpers shared by the plot modules live here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def new_figure(width: float, height: float) -> Any:
    """A standalone figure (Agg canvas) of ``width`` x ``height`` inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG to ``path`` (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def token_label(text: str, max_chars: int = 12) -> str:
    """A token made readable on a plot: visible spaces/newlines, shortened to ``max_chars``."""
    shown = text.replace("\n", "\\n").replace("\t", "\\t").replace(" ", "\u2423")
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in shown)
    shown = shown.replace("$", r"\$")  # matplotlib mathtext
    if len(shown) > max_chars:
        shown = shown[: max_chars - 1] + "\u2026"
    return shown or "\u2205"
