"""Figures of the fact_consistency study (from its JSON-safe data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lens.plots import new_figure, save_figure
from lens.plots.common import layer_ticks
from lens.studies.fact_consistency.data import FactConsistencyData


def _nan(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def plot_all(data: FactConsistencyData, out: Path) -> list[Path]:
    """recall_clc.png, and training.png / shortcut.png when those parts ran."""
    paths = [plot_final(data, out / "recall_clc.png")]
    if data.training and data.training["points"]:
        paths.append(plot_training(data, out / "training.png"))
    if data.shortcut and data.shortcut["layers"]:
        paths.append(plot_shortcut(data, out / "shortcut.png"))
    return paths


def plot_final(data: FactConsistencyData, path: Path) -> Path:
    """Bars: recall per script (trained / held-out facts) and CLC with the pivot."""
    final, scripts = data.final, data.scripts
    x = np.arange(len(scripts))
    fig = new_figure(7.5, 3.6)
    ax = fig.add_subplot()
    split = final["recall_split"]
    ax.bar(x - 0.27, _nan([final["recall"][s] for s in scripts]), 0.18, label="recall (all)")
    if any(data.heldout.get(s) for s in scripts):  # the organism's held-out pairs
        ax.bar(
            x - 0.09,
            _nan([split[s]["trained"] for s in scripts]),
            0.18,
            label="recall (trained facts)",
        )
        ax.bar(
            x + 0.09,
            _nan([split[s]["heldout"] for s in scripts]),
            0.18,
            label="recall (held-out facts)",
        )
    for i, s in enumerate(scripts):
        if s in (data.near_zero or []):
            ax.text(i, 0.02, "near-zero\nrecall", ha="center", fontsize=7, color="firebrick")
    ax.bar(
        x + 0.27,
        _nan([final["clc"].get(s) for s in scripts]),
        0.18,
        label=f"CLC with {data.pivot}",
        color="black",
    )
    ax.set_xticks(x, scripts)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share")
    ax.set_title(
        "Factual recall per language / notation and consistency with the pivot", fontsize=10
    )
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, ncols=4, loc="outside lower center")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def plot_training(data: FactConsistencyData, path: Path) -> Path:
    """Recall per script and CLC with the pivot vs training step."""
    if data.training is None:
        raise ValueError("no training checkpoints were measured: nothing to plot")
    points, scripts, pivot = data.training["points"], data.scripts, data.pivot
    steps = [p["step"] for p in points]
    fig = new_figure(10.0, 3.6)
    left, right = fig.subplots(1, 2)
    for s in scripts:
        left.plot(
            steps,
            _nan([p["recall"][s] for p in points]),
            marker="o",
            markersize=3,
            label=s,
            linewidth=2.5 if s == pivot else 1.2,
        )
    for s in scripts:
        if s != pivot:
            right.plot(
                steps, _nan([p["clc"][s] for p in points]), marker="o", markersize=3, label=s
            )
    right.plot(
        steps, _nan([p["mean_clc"] for p in points]), color="black", linestyle="--", label="mean"
    )
    for ax, name in ((left, "recall"), (right, f"CLC with {pivot}")):
        ax.set_xlabel("training step (last point: final model)")
        ax.set_ylabel(name)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    left.set_title("Factual recall over training", fontsize=10)
    right.set_title("Cross-lingual consistency over training", fontsize=10)
    return save_figure(fig, path)


def plot_shortcut(data: FactConsistencyData, path: Path) -> Path:
    """Mean recall, mean CLC and top-1 agreement with a shortcut from each layer."""
    sc = data.shortcut
    if sc is None:
        raise ValueError("no shortcut was fitted: nothing to plot")
    layers = [e["layer"] for e in sc["layers"]]
    fig = new_figure(6.5, 3.8)
    ax = fig.add_subplot()
    recall = ax.plot(
        layers, [e["mean_recall"] for e in sc["layers"]], marker="o", label="recall, shortcut"
    )[0]
    clc = ax.plot(
        layers, _nan([e["mean_clc"] for e in sc["layers"]]), marker="s", label="CLC, shortcut"
    )[0]
    ax.plot(
        layers,
        [e["agreement"] for e in sc["layers"]],
        marker="^",
        color="gray",
        label="top-1 agreement with full model",
    )
    ax.axhline(
        sc["full"]["mean_recall"],
        color=recall.get_color(),
        linestyle="--",
        label="recall, full model",
    )
    if sc["full"]["mean_clc"] is not None:
        ax.axhline(
            sc["full"]["mean_clc"], color=clc.get_color(), linestyle="--", label="CLC, full model"
        )
    layer_ticks(ax, layers)
    ax.set_xlabel("shortcut source layer (layers after it replaced by an affine map)")
    ax.set_ylabel("mean over scripts")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Linear shortcut to the last layer: recall and CLC", fontsize=10)
    return save_figure(fig, path)
