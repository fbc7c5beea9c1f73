"""Decoding the panels of the concept_space study and checking the pivot-first pattern."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lens.studies._organism_data import (
    language_token_ids,
    non_pivot_scripts,
    word_ids,
)
from lens.studies.base import jsonable
from lens.studies.concept_space.config import Config
from lens.studies.concept_space.data import ConceptSpaceData
from lens.studies.concept_space.findings import findings
from lens.studies.concept_space.report import Result

ANSWERS = ("target answer", "pivot answer", "source word")
CATEGORIES = ("target language", "pivot language", "code")


def run(model: Any, config: Config) -> Result:
    """Decode every panel and check the "pivot first, target last" pattern.

    Example:
        >>> import lens
        >>> from lens.studies import concept_space
        >>> model = lens.load_model("organism")                      # doctest: +SKIP
        >>> res = concept_space.run(model, concept_space.quick_config())  # doctest: +SKIP
        >>> res.save("out/concept_space")                            # doctest: +SKIP
    """
    from lens import organism

    if not 0.0 <= config.min_mass <= 1.0:
        raise ValueError(f"min_mass must be in [0, 1], got {config.min_mass}")
    from lens.studies.datasets import study_dataset

    dataset, source, world = study_dataset(model, config, config.organism_folder)
    if world is None:
        from lens.studies._organism_data import model_label
        from lens.studies.concept_space.on_data import run_on_data

        return run_on_data(model, config, dataset, source, model_label(model))
    sources = non_pivot_scripts(world, config.sources)
    targets = non_pivot_scripts(world, config.targets)
    facts = non_pivot_scripts(world, config.fact_scripts)
    lang_ids = language_token_ids(world, model)
    rng = random.Random(config.seed)
    jobs: list[dict[str, Any]] = []
    for src in sources:
        for tgt in targets:
            if src == tgt:
                continue
            pairs = organism.translation_pairs(world, src, tgt, tuple(config.kinds))
            pairs = _sample(pairs, config.max_items, rng)
            jobs.append(
                {
                    "name": f"{src}->{tgt}",
                    "kind": "translation",
                    "src": src,
                    "tgt": tgt,
                    "prompts": [p.prompt for p in pairs],
                    "target answer": [p.answer for p in pairs],
                    "pivot answer": [p.pivot_word for p in pairs],
                    "source word": [p.source_word for p in pairs],
                }
            )
    for lang in facts:
        qs = organism.fact_queries(world, lang, heldout=config.fact_heldout)
        qs = _sample([q for q in qs if q.answer != q.pivot_answer], config.max_facts, rng)
        jobs.append(
            {
                "name": f"facts {lang}",
                "kind": "facts",
                "src": lang,
                "tgt": lang,
                "prompts": [q.prompt for q in qs],
                "target answer": [q.answer for q in qs],
                "pivot answer": [q.pivot_answer for q in qs],
            }
        )
    panels = []
    for job in tqdm(jobs, desc="concept space", disable=len(jobs) < 4):
        if not job["prompts"]:
            continue
        cats = {
            "target language": lang_ids.get(job["tgt"], set()),
            "pivot language": lang_ids.get(world.pivot, set()),
            "code": lang_ids["code"],
        }
        ids = {a: word_ids(model, job[a]) for a in ANSWERS if a in job}
        panels.append(decode_panel(model, job, ids, cats, config.batch_size))
    if not panels:
        raise ValueError("no items to decode: check sources/targets/kinds/fact_scripts")
    data = {
        "n_layers": int(model.cfg.n_layers),
        "layers": list(range(int(model.cfg.n_layers))),
        "pivot": world.pivot,
        "panels": panels,
    }
    data["summary"] = summarize(panels, config.min_mass)
    typed = ConceptSpaceData.from_dict(jsonable(data))
    return Result(
        config=config.to_dict(),
        model=_model_label(model, config),
        data=typed,
        findings=findings(typed.summary, config.min_mass),
    )


# ---------------------------------------------------------------------- measuring


def _sample(items: list, n: int | None, rng: random.Random) -> list:
    if n is None or n >= len(items):
        return items
    keep = sorted(rng.sample(range(len(items)), n))
    return [items[i] for i in keep]


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
        mass[name] = res.target_probs[:, :, 0].mean(axis=1).tolist()
        top1[name] = (res.top_ids[:, :, 0, 0] == np.asarray(ids)[None]).mean(axis=1).tolist()
        if j == 0 and cats is not None:
            for c, cname in enumerate(res.category_names):
                mass[cname] = res.category_mass[:, :, 0, c].mean(axis=1).tolist()
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


def _model_label(model: Any, config: Config) -> str:
    return f"organism ({config.organism_folder})" if config.organism_folder else "organism"
