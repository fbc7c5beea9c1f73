"""Plots of the circuit discovery study: faithfulness curves and the circuit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lens.circuits.plot import plot_circuit
from lens.plots import new_figure, save_figure

__all__ = ["plot_circuit", "plot_curves"]


def plot_curves(curves: dict[str, dict[str, Any]], n_edges: int, path: Path) -> Path:
    """Faithfulness against edges kept (log scale), one line per method.

    Example:
        >>> import tempfile, pathlib
        >>> c = {"eap": {"n_edges": [0, 1, 10], "faithfulness": [0.0, 0.4, 1.0], "cpr": 0.9}}
        >>> plot_curves(c, 10, pathlib.Path(tempfile.mkdtemp()) / "f.png").is_file()
        True
    """
    fig = new_figure(6, 3.8)
    ax = fig.subplots()
    for name, c in curves.items():
        pts = [(n, f) for n, f in zip(c["n_edges"], c["faithfulness"]) if n > 0]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3,
                label=f"{name} (CPR {c['cpr']:.3f})")  # fmt: skip
    ax.axhline(1.0, color="0.6", lw=0.8, ls="--")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"edges kept (of {n_edges})")
    ax.set_ylabel("faithfulness")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
