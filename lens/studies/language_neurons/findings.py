"""The language-neuron paper's claims, checked against the study's numbers."""

from __future__ import annotations

import numpy as np

from lens.studies.base import (
    Finding,
    fmt_number,
)
from lens.studies.language_neurons.data import LanguageNeuronsData


def _fmt(x: float | None) -> str:
    return fmt_number(x, 4)


def findings(data: LanguageNeuronsData) -> list[Finding]:
    """The paper's claims checked against ``data`` (computed, never assumed)."""
    langs = data.languages
    inc = np.array(data.increase, dtype=float)
    st = data.stats
    rnd = np.array(data.random_mean, dtype=float)
    out = []
    rows = [i for i in range(len(langs)) if not np.isnan(inc[i]).any()]
    missing = [langs[i] for i in range(len(langs)) if i not in rows]
    note = f" Languages without neurons (no row): {missing}." if missing else ""
    if st["n_rows"] and st["off_mean"] is not None:
        out.append(
            Finding(
                claim="Deactivating a language's neurons raises the loss on that language more "
                "than on the others (the diagonal of the deactivation matrix dominates).",
                reproduced=st["diag_mean"] > st["off_mean"],
                evidence=f"Mean loss increase on the own language {_fmt(st['diag_mean'])} nats vs "
                f"{_fmt(st['off_mean'])} on other languages.{note}",
            )
        )
        own = [langs[i] for i in st["rows_own_max"]]
        out.append(
            Finding(
                claim="Each language's neurons hurt their own language most (row maximum on the "
                "diagonal for every language).",
                reproduced=len(own) == st["n_rows"],
                evidence=f"Own language hurt most for {len(own)}/{st['n_rows']} languages "
                f"({', '.join(own) or 'none'}).{note}",
            )
        )
    if rows and not np.isnan(rnd[rows]).all():
        own_inc = np.array([inc[i, i] for i in rows])
        base = np.array([rnd[i, i] for i in rows])
        beats = [langs[i] for i, a, b in zip(rows, own_inc, base) if a > b]
        out.append(
            Finding(
                claim="Language neurons matter more than random neurons: the own-language loss "
                "increase exceeds that of random neurons with the same per-layer counts.",
                reproduced=len(beats) == len(rows),
                evidence=f"Own-language increase {own_inc.mean():.4f} vs random "
                f"{base.mean():.4f} nats "
                f"(mean over languages, {len(data.random_increase)} seed(s)); higher "
                f"than random for {len(beats)}/{len(rows)} languages.",
            )
        )
    per_layer = np.array(data.per_layer)
    total = per_layer.sum()
    if total > 0:
        idx = [data.layers.index(layer) for layer in data.edge_layers]
        share = per_layer[:, idx].sum() / total
        half = len(data.layers) / 2
        bottom = per_layer[:, [i for i in idx if i < half]].sum() / total
        uniform = len(idx) / len(data.layers)
        out.append(
            Finding(
                claim="Language-specific neurons concentrate in the bottom and top layers "
                "(a larger share there than if they were spread evenly over the layers).",
                reproduced=bool(share > uniform),
                evidence=f"{share:.0%} of the language-neuron assignments are in layers "
                f"{data.edge_layers} ({uniform:.0%} if spread evenly): {bottom:.0%} in the "
                f"bottom ones, {share - bottom:.0%} in the top ones.",
            )
        )
    return out
