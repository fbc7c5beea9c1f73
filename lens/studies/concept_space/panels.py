"""One concept_space task panel decoded with the logit lens, the "pivot first, target last"
test, and the per-group summary: shared by the organism path (run.py) and any dataset
(on_data.py)."""

from __future__ import annotations

from typing import Any

import numpy as np


def decode_panel(
    model: Any,
    job: dict[str, Any],
    answer_ids: dict[str, list[int]],
    cats: dict[str, set[int]] | None,
    batch_size: int,
) -> dict[str, Any]:
    """Mean (over items) per-layer probability of each answer (``{curve: [token id per
    prompt]}``) and of each token category (read along with the first curve)."""
    import lens

    mass: dict[str, list[float]] = {}
    top1: dict[str, list[float]] = {}
    for j, (name, ids) in enumerate(answer_ids.items()):
        res = lens.logit_lens(
            model,
            job["prompts"],
            positions="last",
            top_k=1,
            targets=ids,
            categories=cats if j == 0 else None,
            batch_size=batch_size,
        )
        probs, cat_mass = res.target_probs, res.category_mass
        if probs is None or (j == 0 and cats is not None and cat_mass is None):
            raise RuntimeError("logit_lens left out the target or category mass it was asked for")
        mass[name] = probs[:, :, 0].mean(axis=1).tolist()
        top1[name] = (res.top_ids[:, :, 0, 0] == np.asarray(ids)[None]).mean(axis=1).tolist()
        if j == 0 and cat_mass is not None:
            for c, cname in enumerate(res.category_names):
                mass[cname] = cat_mass[:, :, 0, c].mean(axis=1).tolist()
    return {
        "name": job["name"],
        "kind": job["kind"],
        "group": job.get("group") or _group_of(job),
        "src": job["src"],
        "tgt": job["tgt"],
        "n": len(job["prompts"]),
        "prompts": job["prompts"],
        "answers": job["target answer"],
        "pivot_words": job["pivot answer"],
        "mass": mass,
        "top1": top1,
    }


def pivot_first(pivot: list[float], target: list[float], min_mass: float) -> dict[str, Any]:
    """Check "middle layers favour the pivot answer, the last layer the target answer".

    Holds when some layer before the last has ``pivot > target`` and ``pivot >= min_mass``,
    and the last layer has ``target > pivot``. Also returns the layer of the largest pivot
    probability before the last layer, the values there and at the last layer, and the
    ``switch_layer``: the first layer from which the target stays above the pivot.

    Example:
        >>> pivot_first([0.0, 0.4, 0.1], [0.0, 0.1, 0.8], 0.05)["holds"]
        True
    """
    n = len(pivot)
    mids = list(range(n - 1))
    peak = max(mids, key=lambda i: pivot[i]) if mids else n - 1
    over = [i for i in mids if pivot[i] > target[i] and pivot[i] >= min_mass]
    switch = n
    for i in range(n - 1, -1, -1):
        if target[i] > pivot[i]:
            switch = i
        else:
            break
    return {
        "holds": bool(over) and target[-1] > pivot[-1],
        "layers_pivot_ahead": over,
        "peak_layer": peak,
        "pivot_peak": pivot[peak],
        "target_at_peak": target[peak],
        "pivot_final": pivot[-1],
        "target_final": target[-1],
        "switch_layer": switch if switch < n else None,
    }


GROUPS = ("translate to language", "translate to code", "repetition", "facts")


def _group_of(panel: dict[str, Any]) -> str:
    """The organism's panel groups: facts, translation into a code notation or a language."""
    from lens.organism.world import NOTATIONS

    if panel["kind"] == "facts":
        return "facts"
    return "translate to code" if panel["tgt"] in NOTATIONS else "translate to language"


def summarize(panels: list[dict[str, Any]], min_mass: float) -> dict[str, Any]:
    """Per panel and per group (mean curves) the :func:`pivot_first` check."""
    for p in panels:
        p["check"] = pivot_first(p["mass"]["pivot answer"], p["mass"]["target answer"], min_mass)
    groups: dict[str, Any] = {}
    names = sorted({p["group"] for p in panels}, key=GROUPS.index)
    for g in names:
        members = [p for p in panels if p["group"] == g]
        keys = [k for k in members[0]["mass"] if all(k in m["mass"] for m in members)]
        curves = {k: np.mean([m["mass"][k] for m in members], axis=0).tolist() for k in keys}
        check = pivot_first(curves["pivot answer"], curves["target answer"], min_mass)
        check["panels_holding"] = sum(m["check"]["holds"] for m in members)
        check["n_panels"] = len(members)
        groups[g] = {"panels": [m["name"] for m in members], "mass": curves, "check": check}
    return {"groups": groups, "min_mass": min_mass}
