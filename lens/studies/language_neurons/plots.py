"""Figures of the language-neuron study: neurons per layer, and the deactivation matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lens.plots import new_figure, save_figure
from lens.plots.common import heatmap, layer_ticks
from lens.studies.language_neurons.data import LanguageNeuronsData


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i) for i in range(n)]


def plot_layer_distribution(data: LanguageNeuronsData, path: Path) -> Path:
    """Stacked bars: LAPE neurons per layer, one colour per language."""
    langs, layers = data.languages, data.layers
    per_layer = np.array(data.per_layer)
    fig = new_figure(max(5.0, 0.5 * len(layers) + 3), 3.8)
    ax = fig.add_subplot()
    bottom = np.zeros(per_layer.shape[1])
    colours = _colors(len(langs))
    for k, lang in enumerate(langs):
        ax.bar(range(len(layers)), per_layer[k], bottom=bottom, label=lang, color=colours[k])
        bottom += per_layer[k]
    layer_ticks(ax, layers, at=range(len(layers)))
    ax.set_xlabel("layer")
    ax.set_ylabel("language-specific neurons")
    ax.set_title("LAPE neurons per layer and language")
    ax.legend(fontsize=8, ncols=2 if len(langs) > 5 else 1)
    return save_figure(fig, path)


def plot_deactivation_matrix(data: LanguageNeuronsData, path: Path) -> Path:
    """Loss increase per (deactivated language, measured language): LAPE vs random neurons."""
    langs = data.languages
    inc = np.array(data.increase, dtype=float)
    rnd = np.array(data.random_mean, dtype=float)
    fig = new_figure(2 * (0.55 * len(langs) + 2.2), 0.55 * len(langs) + 2.0)
    both = np.concatenate([inc[~np.isnan(inc)], rnd[~np.isnan(rnd)]])
    vmax = float(np.abs(both).max()) if both.size else 1.0
    im = None
    for p, (mat, name) in enumerate([(inc, "language neurons"), (rnd, "random neurons")]):
        ax = fig.add_subplot(1, 2, p + 1)
        im = heatmap(ax, mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, fmt="{:.3f}", fontsize=7)
        ax.set_xticks(range(len(langs)), langs, rotation=45)
        ax.set_yticks(range(len(langs)), langs)
        ax.set_xlabel("loss measured on language j")
        ax.set_ylabel("neurons of language i deactivated")
        ax.set_title(f"loss increase (nats): {name}", fontsize=10)
    fig.colorbar(im, ax=fig.axes, shrink=0.8, label="nats")
    return save_figure(fig, path)
