"""The fact_consistency papers' claims, checked against the study's numbers."""

from __future__ import annotations

from lens.studies.base import Finding
from lens.studies.base import fmt_number as _num
from lens.studies.fact_consistency.data import FactConsistencyData, Shortcut

# ---------------------------------------------------------------------- findings


def near_zero_note(data: FactConsistencyData) -> str:
    """A sentence naming the languages flagged for near-zero baseline recall ("" if none)."""
    flagged = data.near_zero or []
    if not flagged:
        return ""
    min_recall = _num(data.min_recall) if data.min_recall is not None else "the threshold"
    return (
        f" Near-zero baseline recall (below {min_recall}) in {', '.join(flagged)}: the model "
        "hardly answers these facts in those languages at all, so their consistency is not "
        "computed (it would compare near-empty sets)."
    )


def _shortcut_recall_only(sc: Shortcut) -> Finding:
    """The shortcut claim where no language has a measurable CLC: its recall half only."""
    full = sc["full"]
    best = max(sc["layers"], key=lambda e: e["mean_recall"])
    per = "; ".join(
        f"L{e['layer']}: recall {e['mean_recall']:.2f}, top-1 agreement {e['agreement']:.2f}"
        for e in sc["layers"]
    )
    return Finding(
        "A linear shortcut that bypasses the last layers raises recall (its effect on "
        "cross-lingual consistency cannot be measured here: no non-pivot language has "
        "usable recall).",
        best["mean_recall"] > full["mean_recall"],
        f"On the {len(sc['eval_facts'])} held-out-from-fit facts the full model has recall "
        f"{full['mean_recall']:.2f} (mean over languages). With the shortcut from {per}.",
    )


def _full_pivot_note(pivot_recall: float | None, pivot: str) -> str:
    if pivot_recall != 1.0:
        return ""
    return (
        f" (With {pivot} recall 1.00, C_{pivot} holds every fact, so CLC(L) equals the recall "
        "in L.)"
    )


def findings(data: FactConsistencyData) -> list[Finding]:
    pivot, final = data.pivot, data.final
    others = [s for s in data.scripts if s != pivot]
    out = []
    if others:
        rec = final["recall"]
        lagging = [s for s in others if (rec[s] or 0.0) < (rec[pivot] or 0.0)]
        split = final["recall_split"]
        trained = ", ".join(
            f"{s} {split[s]['trained']:.2f}" for s in others if split[s]["trained"] is not None
        )
        held = ", ".join(
            f"{s} {split[s]['heldout']:.2f}" for s in others if split[s]["heldout"] is not None
        )
        trained_lag = sum(
            (t := split[s]["trained"]) is not None and (p := rec[pivot]) is not None and t < p
            for s in others
        )
        has_heldout = any(data.heldout.get(s) for s in others)
        split_note = (
            f" On facts trained in that language: {trained or 'n/a'}; on its held-out facts: "
            f"{held or 'n/a'}. {trained_lag}/{len(others)} lag the pivot on their trained "
            "facts alone."
            if has_heldout
            else ""
        )
        out.append(
            Finding(
                "Factual recall in every non-pivot language and notation lags the pivot.",
                len(lagging) == len(others),
                f"Recall (all {len(data.facts)} facts): {pivot} {_num(rec[pivot])}; "
                + ", ".join(f"{s} {_num(rec[s])}" for s in others)
                + f" ({len(lagging)}/{len(others)} below the pivot).{split_note} "
                f"CLC with {pivot}: "
                + ", ".join(f"{s} {_num(final['clc'][s])}" for s in others)
                + "."
                + _full_pivot_note(rec[pivot], pivot)
                + near_zero_note(data),
            )
        )
    points = data.training["points"] if data.training else []
    if others and len(points) >= 2:
        first, last = points[0], points[-1]
        curve = ", ".join(f"{p['label']}: {_num(p['mean_clc'])}" for p in points)
        rcurve = ", ".join(_num(p["mean_recall_others"]) for p in points)
        out.append(
            Finding(
                "Cross-lingual consistency with the pivot rises over training.",
                (last["mean_clc"] or 0.0) > (first["mean_clc"] or 0.0),
                f"Mean CLC over the non-pivot scripts: {curve}. Mean non-pivot recall at the "
                f"same points: {rcurve}; pivot recall {first['recall'][pivot]:.2f} -> "
                f"{last['recall'][pivot]:.2f}.",
            )
        )
    sc = data.shortcut
    if sc and sc["layers"] and others and sc["full"]["mean_clc"] is None:
        out.append(_shortcut_recall_only(sc))
    elif sc and sc["layers"] and others:
        full = sc["full"]
        best = max(sc["layers"], key=lambda e: (e["mean_clc"] or 0.0, e["mean_recall"]))
        per = "; ".join(
            f"L{e['layer']}: recall {e['mean_recall']:.2f} "
            f"({100 * (e['recall_kept'] or 0):.0f}% kept), CLC "
            f"{_num(e['mean_clc'])}, top-1 agreement {e['agreement']:.2f}"
            for e in sc["layers"]
        )
        improves = (
            best["mean_clc"] is not None
            and full["mean_clc"] is not None
            and best["mean_clc"] > full["mean_clc"]
            and best["mean_recall"] >= full["mean_recall"]
        )
        out.append(
            Finding(
                "A linear shortcut that bypasses the last layers raises both recall and "
                "cross-lingual consistency.",
                bool(improves),
                f"On the {len(sc['eval_facts'])} held-out-from-fit facts the full model has "
                f"recall {full['mean_recall']:.2f} (mean over scripts) and mean CLC "
                f"{_num(full['mean_clc'])}. With the shortcut from {per}. Best CLC from layer "
                f"{best['layer']}.",
            )
        )
    return out
