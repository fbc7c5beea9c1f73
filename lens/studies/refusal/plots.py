"""Plots of the refusal study: selection scores per (layer, position), refusal rates per
language, and language x language matrices (transfer, cosine similarity)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lens.plots import new_figure, save_figure

_SCORES = (
    ("bypass", "bypass score (ablated, harmful)\nlower = refusal removed"),
    ("induce", "induce score (added, harmless)\nhigher = refusal induced"),
    ("kl", "KL on harmless prompts\n(ablated vs base)"),
)


def plot_selection(
    selection: dict[str, Any], lang: str, n_layers: int, positions: Sequence[int], path: Path
) -> Path:
    """Heatmaps (layer x position) of the bypass, induce and KL scores of every candidate of one
    language; the selected candidate is boxed, filtered ones are marked with x.

    Example:
        >>> import tempfile, pathlib
        >>> sel = {"layer": 0, "position": -1, "scores": [
        ...     {"layer": 0, "position": -1, "bypass": -1.0, "induce": 1.0, "kl": 0.0,
        ...      "reason": ""}]}
        >>> p = plot_selection(sel, "en", 1, [-1], pathlib.Path(tempfile.mkdtemp()) / "s.png")
        >>> p.is_file()
        True
    """
    positions = list(positions)
    fig = new_figure(4.0 * len(_SCORES), 1.2 + 0.45 * n_layers)
    axes = fig.subplots(1, len(_SCORES))
    for ax, (key, label) in zip(np.atleast_1d(axes), _SCORES):
        grid = np.full((n_layers, len(positions)), np.nan)
        dropped = []
        for s in selection["scores"]:
            value = s[key]
            grid[s["layer"], positions.index(s["position"])] = np.nan if value is None else value
            if s["reason"]:
                dropped.append((s["layer"], positions.index(s["position"])))
        im = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis")
        fig.colorbar(im, ax=ax)
        for layer, col in dropped:
            ax.text(col, layer, "x", ha="center", va="center", color="red", fontsize=11)
        sel_col = positions.index(selection["position"])
        ax.add_patch(_box(sel_col, selection["layer"]))
        ax.set_xticks(range(len(positions)), [str(p) for p in positions])
        ax.set_yticks(range(n_layers))
        ax.set_xlabel("position (offset from the end)")
        ax.set_ylabel("layer")
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"direction selection, language {lang} (box = selected, x = filtered out)")
    return save_figure(fig, path)


def _box(col: int, row: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5)


def plot_refusal_bars(
    refusal: dict[str, dict[str, float]], langs: Sequence[str], path: Path
) -> Path:
    """Grouped bars per language: harmful refusal before / after ablation, harmless refusal
    before / with the activation addition."""
    bars = (
        ("harmful_before", "harmful"),
        ("harmful_after", "harmful, direction ablated"),
        ("harmless_before", "harmless"),
        ("harmless_with_addition", "harmless, direction added"),
    )
    fig = new_figure(1.6 + 1.3 * len(langs), 3.6)
    ax = fig.subplots()
    x = np.arange(len(langs))
    width = 0.8 / len(bars)
    for i, (key, label) in enumerate(bars):
        values = [refusal[g][key] if refusal[g][key] is not None else np.nan for g in langs]
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, list(langs))
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("language")
    ax.set_ylabel("refusal rate (held-out requests)")
    ax.set_title("refusal before and after intervening on the direction")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return save_figure(fig, path)


def plot_matrix(
    matrix: Sequence[Sequence[float]],
    langs: Sequence[str],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    vmin: float,
    vmax: float,
    cmap: str = "viridis",
) -> Path:
    """A language x language heatmap with the values written in the cells."""
    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    fig = new_figure(1.8 + 0.8 * len(langs), 1.4 + 0.7 * len(langs))
    ax = fig.subplots()
    im = ax.imshow(m, vmin=vmin, vmax=vmax, cmap=cmap)
    fig.colorbar(im, ax=ax)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                "n/a" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if _dark(m[i, j], vmin, vmax) else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(langs)), list(langs))
    ax.set_yticks(range(len(langs)), list(langs))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def _dark(value: float, vmin: float, vmax: float) -> bool:
    if np.isnan(value):
        return False
    return (value - vmin) / max(vmax - vmin, 1e-12) < 0.5
