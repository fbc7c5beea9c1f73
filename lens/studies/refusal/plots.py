"""Plots of the refusal study: selection scores per (layer, position), refusal rates per
language, and language x language matrices (transfer, cosine similarity)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lens.plots import new_figure, save_figure
from lens.plots.common import heatmap
from lens.studies.refusal.data import Selection

_SCORES: tuple[tuple[Literal["bypass", "induce", "kl"], str], ...] = (
    ("bypass", "bypass score (ablated, harmful)\nlower = refusal removed"),
    ("induce", "induce score (added, harmless)\nhigher = refusal induced"),
    ("kl", "KL on harmless prompts\n(ablated vs base)"),
)


def plot_selection(
    selection: Selection, lang: str, n_layers: int, positions: Sequence[int], path: Path
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
        im = heatmap(ax, grid, max_cells=0, aspect="auto", origin="lower")
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
    before / after ablation / with the activation addition. Every bar carries its value, so a
    rate of 0 is visible too."""
    bars = (
        ("harmful_before", "harmful"),
        ("harmful_after", "harmful, direction ablated"),
        ("harmless_before", "harmless"),
        ("harmless_after_ablation", "harmless, direction ablated"),
        ("harmless_with_addition", "harmless, direction added"),
    )
    fig = new_figure(max(7.0, 2.0 + 1.6 * len(langs)), 4.2)
    ax = fig.subplots()
    x = np.arange(len(langs))
    width = 0.84 / len(bars)
    for i, (key, label) in enumerate(bars):
        values = [np.nan if refusal[g].get(key) is None else refusal[g][key] for g in langs]
        found = ax.bar(x + (i - (len(bars) - 1) / 2) * width, values, width, label=label)
        ax.bar_label(found, fmt="%.2f", fontsize=6, padding=1, rotation=90)
    ax.set_xticks(x, list(langs))
    ax.set_ylim(0, 1.2)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("language")
    ax.set_ylabel("refusal rate (held-out requests)")
    ax.set_title("refusal before and after intervening on the direction")
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside lower center", ncols=3)
    return save_figure(fig, path)


def plot_matrix(
    matrix: Sequence[Sequence[float | None]],
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
    fig = new_figure(max(4.5, 1.8 + 0.8 * len(langs)), 1.6 + 0.7 * len(langs))
    ax = fig.subplots()
    im = heatmap(ax, matrix, vmin=vmin, vmax=vmax, cmap=cmap, fontsize=9, nan_text="n/a")
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(len(langs)), list(langs))
    ax.set_yticks(range(len(langs)), list(langs))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(textwrap.fill(title, 48), fontsize=9)
    return save_figure(fig, path)


def plot_baseline(baseline: dict[str, dict[str, Any]], langs: Sequence[str], path: Path) -> Path:
    """Bars per language: refusal rate of harmful and harmless requests, no intervention."""
    fig = new_figure(max(5.0, 2.0 + 1.2 * len(langs)), 3.8)
    ax = fig.subplots()
    x = np.arange(len(langs))
    for i, cls in enumerate(("harmful", "harmless")):
        values = [baseline[g][cls] for g in langs]
        found = ax.bar(x + (i - 0.5) * 0.4, values, 0.4, label=f"{cls} requests")
        ax.bar_label(found, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, list(langs))
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("language")
    ax.set_ylabel("refusal rate (no intervention)")
    ax.set_title("baseline: how often does the model refuse?")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
