"""The relation-neuron paper's claims, checked against the study's numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from lens.studies.base import (
    Finding,
    off_diagonal,
)
from lens.studies.relation_neurons.data import RelationNeuronsData


def as_array(x: Any) -> np.ndarray:
    """Nested lists (None allowed) as a float array with NaN for None."""
    return np.array(x, dtype=float)


def summary(data: RelationNeuronsData) -> dict[str, Any]:
    """Diagonal / off-diagonal means of the drop matrix per measured language (languages
    flagged for near-zero accuracy have no entry), random baseline too."""
    drop, rnd = as_array(data.drop), as_array(data.random_mean)
    out: dict[str, Any] = {}
    nan = np.full_like(drop[0], np.nan)
    for li, x in enumerate(data.languages):
        m, r = drop[li], (rnd[li] if li < len(rnd) else nan)
        if np.isnan(m).all():
            continue
        out[x] = {
            "diag": float(np.nanmean(np.diag(m))),
            "off": float(np.nanmean(off_diagonal(m))),
            "random_diag": float(np.nanmean(np.diag(r))) if not np.isnan(r).all() else None,
            "rows_own_max": int(
                sum(m[i, i] > np.nanmax(np.delete(m[i], i)) for i in range(len(m)))
            ),
            "negative_off": int((off_diagonal(m) < 0).sum()),
            "min_off": float(np.nanmin(off_diagonal(m))),
            "random_negative_off": (
                int((off_diagonal(r) < 0).sum()) if not np.isnan(r).all() else None
            ),
        }
    return out


def findings(data: RelationNeuronsData) -> list[Finding]:
    """The paper's claims checked against ``data`` (computed, never assumed)."""
    s = summary(data)
    lang = data.language
    p = s[lang]
    n_rel = len(data.relations)
    out = []
    if lang in (data.near_zero or []):
        out.append(
            Finding(
                claim=f"The model recalls the facts in the selection language {lang} (needed "
                "for every claim below).",
                reproduced=False,
                evidence=f"Mean baseline accuracy {np.nanmean(as_array(data.base_accuracy)[0]):.2f}"
                f" is below {data.min_accuracy}: the drops below are meaningless.",
            )
        )
    out += [
        Finding(
            claim=f"Deactivating a relation's neurons lowers recall of that relation more than of "
            f"the others (drop-matrix diagonal > off-diagonal mean, {lang}).",
            reproduced=p["diag"] > p["off"],
            evidence=f"Mean accuracy drop on the own relation {p['diag']:.3f} vs {p['off']:.3f} "
            f"on other relations (k={data.k} neurons each).",
        )
    ]
    out.append(
        Finding(
            claim="Each relation's neurons hurt their own relation most (row maximum on the "
            f"diagonal for every relation, {lang}).",
            reproduced=p["rows_own_max"] == n_rel,
            evidence=f"Own relation hurt strictly most for {p['rows_own_max']}/{n_rel} relations.",
        )
    )
    if p["random_diag"] is not None:
        out.append(
            Finding(
                claim="Relation neurons matter more than random neurons of the same per-layer "
                "counts.",
                reproduced=p["diag"] > p["random_diag"],
                evidence=f"Own-relation drop {p['diag']:.3f} vs {p['random_diag']:.3f} with "
                f"random neurons ({len(data.random_drop)} seed(s)).",
            )
        )
    cum = data.cumulativity
    own = cum["own"]
    steps = [b - a for a, b in zip(own, own[1:])]
    out.append(
        Finding(
            claim="Cumulativity: the own-relation drop grows as more of the relation's neurons "
            "are deactivated.",
            reproduced=bool(steps) and all(d >= 0 for d in steps) and own[-1] > own[0],
            evidence="Mean own-relation drop at k = "
            + ", ".join(f"{kk}: {v:.3f}" for kk, v in zip(cum["k"], own))
            + (
                "; random: " + ", ".join(f"{v:.3f}" for v in cum["random_own"])
                if None not in cum["random_own"]
                else ""
            )
            + ".",
        )
    )
    jac = off_diagonal(as_array(data.jaccard))
    out.append(
        Finding(
            claim="Versatility: relations share some of their neurons.",
            reproduced=data.n_shared_neurons > 0,
            evidence=f"{data.n_shared_neurons} of {data.n_distinct_neurons} selected neurons "
            f"belong to two or more relations; mean pairwise Jaccard {jac.mean():.3f} "
            f"(max {jac.max():.3f}).",
        )
    )
    rnd_neg = p["random_negative_off"]
    out.append(
        Finding(
            claim="Interference: deactivating one relation's neurons can improve recall of "
            "another relation (negative drops).",
            reproduced=p["negative_off"] > 0,
            evidence=f"{p['negative_off']} of {n_rel * (n_rel - 1)} off-diagonal entries are "
            f"negative (most negative {p['min_off']:.3f})"
            + (f"; random neurons: {rnd_neg}" if rnd_neg is not None else "")
            + ".",
        )
    )
    flagged = [x for x in data.languages if x != lang and x not in s]
    transfer = [x for x in data.languages if x != lang and x in s]
    if flagged:
        base = as_array(data.base_accuracy)
        accs = ", ".join(f"{x} {np.nanmean(base[data.languages.index(x)]):.2f}" for x in flagged)
        out.append(
            Finding(
                claim=f"Relation neurons selected in {lang} also lower recall of the same "
                "relation in other languages — not testable in " + ", ".join(flagged) + ".",
                reproduced=False,
                evidence=f"Baseline accuracy there is near zero ({accs}; threshold "
                f"{data.min_accuracy}): the model hardly answers these facts in those "
                "languages at all, so there is no recall for the neurons to lower.",
            )
        )
    if transfer:
        holds = [x for x in transfer if s[x]["diag"] > s[x]["off"]]
        out.append(
            Finding(
                claim=f"Relation neurons selected in {lang} also lower recall of the same "
                f"relation asked in other languages (diagonal > off-diagonal there).",
                reproduced=len(holds) == len(transfer),
                evidence="Own vs other relations: "
                + "; ".join(f"{x} {s[x]['diag']:.3f} vs {s[x]['off']:.3f}" for x in transfer)
                + f" (holds in {len(holds)}/{len(transfer)}).",
            )
        )
    return out
