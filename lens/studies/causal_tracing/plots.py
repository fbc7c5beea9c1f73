"""Plots of the causal tracing study: indirect effect per layer x token role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lens.patching.tracing import ROLES
from lens.plots import new_figure, save_figure
from lens.plots.common import heatmap

KINDS = ("resid", "mlp", "attn")


def plot_trace(by_role: dict[str, Any], lang: str, path: Path) -> Path:
    """Three heatmaps (residual stream, MLP window, attention window) of one language's mean
    indirect effect, layers bottom to top, token roles left to right.

    Example:
        >>> import tempfile, pathlib
        >>> grid = [[0.1] * 6, [0.2] * 6]
        >>> by_role = {"resid": grid, "mlp": grid, "attn": grid}
        >>> plot_trace(by_role, "en", pathlib.Path(tempfile.mkdtemp()) / "t.png").is_file()
        True
    """
    fig = new_figure(12, 3.6)
    for ax, kind in zip(fig.subplots(1, len(KINDS)), KINDS):
        image = heatmap(
            ax, by_role[kind], cmap="Purples", max_cells=0, aspect="auto", origin="lower"
        )
        ax.set_xticks(range(len(ROLES)), ROLES, rotation=45, ha="right", fontsize=7)
        ax.set_xlabel("token role")
        ax.set_ylabel("layer")
        ax.set_title(f"{lang}: restore {kind}")
        fig.colorbar(image, ax=ax, label="mean indirect effect\n(answer probability gained)")
    return save_figure(fig, path)
