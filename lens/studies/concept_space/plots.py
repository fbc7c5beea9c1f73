"""Figures of the concept_space study: per-layer curves, one panel per source/target pair."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lens.plots import new_figure, save_figure
from lens.plots.common import layer_ticks
from lens.studies.concept_space.data import ConceptSpaceData

STYLE = {
    "target answer": ("tab:blue", "-"),
    "pivot answer": ("tab:red", "-"),
    "source word": ("tab:gray", "-"),
    "target language": ("tab:blue", ":"),
    "pivot language": ("tab:red", ":"),
    "code": ("tab:green", ":"),
}


def _draw(ax: Any, layers: list[int], mass: dict[str, list[float]]) -> None:
    for name, values in mass.items():
        color, style = STYLE.get(name, ("black", "--"))
        ax.plot(
            layers, values, color=color, linestyle=style, marker="o", markersize=2.5, label=name
        )
    ax.set_ylim(-0.02, 1.02)
    layer_ticks(ax, layers)
    ax.grid(alpha=0.3)


def _plain_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def plot_panels(data: ConceptSpaceData, kind: str, path: str | Path) -> Path:
    """One panel per translation pair (``kind="translation"``) or fact language (``"facts"``)."""
    panels = [p for p in data.panels if p["kind"] == kind]
    if not panels:
        raise ValueError(f"no {kind} panels to plot")
    cols = min(5, len(panels))
    rows = math.ceil(len(panels) / cols)
    width, height = 2.4 * cols + 1.8, 2.0 * rows + 1.3
    fig = _plain_figure(width, height)  # constrained layout takes seconds on a 30-panel grid
    fig.subplots_adjust(
        left=0.6 / width,
        right=1 - 1.5 / width,
        bottom=0.5 / height,
        top=1 - 0.95 / height,  # room for the figure title above the panel titles
        wspace=0.12,
        hspace=0.35,
    )
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    for ax, p in zip(axes.flat, panels):
        _draw(ax, data.layers, p["mass"])
        ax.set_title(f"{p['name']} (n={p['n']})", fontsize=9)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("probability", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("layer", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    what = "translation [src] word [tgt]" if kind == "translation" else "fact queries"
    fig.suptitle(
        f"Logit lens at the last position, {what}: mean probability per layer",
        fontsize=10,
        y=1 - 0.2 / height,
        va="top",
    )
    return save_figure(fig, path)


def plot_groups(data: ConceptSpaceData, path: str | Path) -> Path:
    """The mean curves of each group (translate to language / to code / facts)."""
    groups = data.summary["groups"]
    fig = new_figure(3.6 * len(groups) + 1.6, 3.2)
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    for ax, (name, s) in zip(axes, groups.items()):
        _draw(ax, data.layers, s["mass"])
        ax.set_title(f"{name} (mean of {s['check']['n_panels']})", fontsize=9)
        ax.set_xlabel("layer", fontsize=8)
    axes[0].set_ylabel("probability", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    return save_figure(fig, path)
