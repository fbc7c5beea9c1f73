"""Figures of the relation-neuron study: drop matrices, cumulativity, overlap, transfer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lens.plots import new_figure, save_figure
from lens.plots.common import heatmap
from lens.studies.relation_neurons.data import RelationNeuronsData
from lens.studies.relation_neurons.findings import as_array, summary


def plot_all(d: RelationNeuronsData, out: Path) -> list[Path]:
    """drop_matrix.png, cumulativity.png, overlap.png and transfer.png."""
    rels = d.relations
    n = len(rels)
    paths = []
    drop, rnd = as_array(d.drop)[0], as_array(d.random_mean)[0]
    fig = new_figure(2 * (0.55 * n + 2.4), 0.55 * n + 2.2)
    vals = np.concatenate([drop.ravel(), rnd[~np.isnan(rnd)]])
    vmax = max(float(np.abs(vals).max()), 1e-6)
    im = None
    for p, (mat, name) in enumerate([(drop, "relation neurons"), (rnd, "random neurons")]):
        ax = fig.add_subplot(1, 2, p + 1)
        im = heatmap(ax, mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, fontsize=7)
        ax.set_xticks(range(n), rels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), rels, fontsize=8)
        ax.set_xlabel("accuracy measured on relation j")
        ax.set_ylabel("neurons of relation i deactivated")
        ax.set_title(f"accuracy drop ({d.language}): {name}", fontsize=10)
    fig.colorbar(im, ax=fig.axes, shrink=0.8, label="accuracy drop")
    paths.append(save_figure(fig, out / "drop_matrix.png"))

    cum = d.cumulativity
    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot()
    ax.plot(cum["k"], cum["own"], "o-", label="own relation")
    ax.plot(cum["k"], cum["others"], "s--", label="other relations (mean)")
    if None not in cum["random_own"]:
        ax.plot(cum["k"], cum["random_own"], "^:", label="own relation, random neurons")
    ax.set_xscale("log")
    ax.set_xlabel("neurons deactivated per relation (k)")
    ax.set_ylabel("accuracy drop")
    ax.set_title(f"cumulativity ({d.language})")
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, out / "cumulativity.png"))

    jac = as_array(d.jaccard)
    fig = new_figure(0.55 * n + 2.8, 0.55 * n + 2.0)
    ax = fig.add_subplot()
    im = heatmap(ax, jac, cmap="Purples", vmin=0, vmax=1, fontsize=7)
    ax.set_xticks(range(n), rels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), rels, fontsize=8)
    ax.set_title(f"overlap of neuron sets (Jaccard, k={d.k})", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    paths.append(save_figure(fig, out / "overlap.png"))

    s = summary(d)
    langs = [la for la in d.languages if la in s]
    fig = new_figure(max(5.0, 0.7 * len(langs) + 2), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(langs))
    ax.bar(x - 0.2, [s[la]["diag"] for la in langs], 0.4, label="own relation")
    ax.bar(x + 0.2, [s[la]["off"] for la in langs], 0.4, label="other relations")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x, langs)
    ax.set_ylabel("mean accuracy drop")
    ax.set_title(f"neurons selected in {d.language}, tested per language")
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, out / "transfer.png"))
    return paths
