"""Decoding the panels of the concept_space study and checking the pivot-first pattern."""

from __future__ import annotations

import random
from typing import Any

from tqdm.auto import tqdm

from lens.data.organism_export import EXPORTERS, translation_kind
from lens.studies._organism_data import (
    language_token_ids,
    non_pivot_scripts,
    word_ids,
)
from lens.studies.base import jsonable
from lens.studies.concept_space.config import Config
from lens.studies.concept_space.data import ConceptSpaceData
from lens.studies.concept_space.findings import findings
from lens.studies.concept_space.panels import decode_panel, summarize
from lens.studies.concept_space.report import Result
from lens.studies.facts import fact_queries
from lens.studies.recovery import layer_recovery, planted_truth

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
    words = _words(dataset, tuple(config.kinds))
    jobs: list[dict[str, Any]] = []
    for src in sources:
        for tgt in targets:
            if src != tgt:
                jobs.append(_translation_job(words, world, src, tgt, config.max_items, rng))
    fact_data = EXPORTERS["facts"](world)  # the organism's facts, with its held-out pairs
    queries = fact_queries(fact_data, world)
    pivot_of = {q.id: q.answer for q in queries if q.language == world.pivot}
    for lang in facts:
        qs = [
            q
            for q in queries
            if q.language == lang
            and (config.fact_heldout is None or q.heldout == config.fact_heldout)
            and q.answer != pivot_of[q.id]
        ]
        qs = _sample(qs, config.max_facts, rng)
        jobs.append(
            {
                "name": f"facts {lang}",
                "kind": "facts",
                "src": lang,
                "tgt": lang,
                "prompts": [q.prompt for q in qs],
                "target answer": [q.answer for q in qs],
                "pivot answer": [pivot_of[q.id] for q in qs],
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
    truth = planted_truth(model, "latent_pivot")
    if truth is not None:
        data["recovery"] = _recovery(truth, data["summary"])
    typed = ConceptSpaceData.from_dict(jsonable(data))
    return Result(
        config=config.to_dict(),
        model=_model_label(model, config),
        data=typed,
        findings=findings(typed.summary, config.min_mass),
    )


# ---------------------------------------------------------------------- the organism's tasks


def _words(dataset: Any, kinds: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``{lexicon key: {language: word}}`` of the translations dataset's entries of ``kinds``
    (the organism's export: :func:`lens.data.organism_export.translation_kind`), in file order."""
    out: dict[str, dict[str, str]] = {}
    for r in dataset.records:
        kind, key = translation_kind(r.concept)
        if kind in kinds:
            out.setdefault(key, {})[r.language] = r.word
    return out


def _translation_job(
    words: dict[str, dict[str, str]],
    world: Any,
    src: str,
    tgt: str,
    n: int | None,
    rng: random.Random,
) -> dict[str, Any]:
    """Translate ``src`` -> ``tgt`` in the organism's trained format (``<src tag> word <tgt
    tag>``); entries whose two words are the same token are left out."""
    items = [
        (w[src], w[tgt], w[world.pivot])
        for w in words.values()
        if src in w and tgt in w and world.pivot in w and w[src] != w[tgt]
    ]
    items = _sample(items, n, rng)
    return {
        "name": f"{src}->{tgt}",
        "kind": "translation",
        "src": src,
        "tgt": tgt,
        "prompts": [f"{world.tags[src]} {sw} {world.tags[tgt]}" for sw, _, _ in items],
        "target answer": [tw for _, tw, _ in items],
        "pivot answer": [pw for _, _, pw in items],
        "source word": [sw for sw, _, _ in items],
    }


# ---------------------------------------------------------------------- measuring


def _sample(items: list, n: int | None, rng: random.Random) -> list:
    if n is None or n >= len(items):
        return items
    keep = sorted(rng.sample(range(len(items)), n))
    return [items[i] for i in keep]


def _model_label(model: Any, config: Config) -> str:
    return f"organism ({config.organism_folder})" if config.organism_folder else "organism"


TRANSLATION_GROUPS = ("translate to language", "translate to code")


def _recovery(truth: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any] | None:
    """Per translation group, the layers where the pivot answer leads (the mean curves) vs
    the planted latent pivot's layers; the "pivot first" pattern must hold exactly when it is
    planted. None when no translation group was decoded."""
    groups = {g: s["check"] for g, s in summary["groups"].items() if g in TRANSLATION_GROUPS}
    if not groups:
        return None
    planted = bool(truth["planted"])
    held = [g for g, c in groups.items() if c["holds"]]
    if planted:
        checks = {"pattern found": len(held) == len(groups)}
    else:
        checks = {"pattern not found": not held}
    return layer_recovery(
        {g: c["layers_pivot_ahead"] for g, c in groups.items()}, truth["layers"],
        "latent pivot (pivot word decoded first)", planted=planted, checks=checks,
    )  # fmt: skip
