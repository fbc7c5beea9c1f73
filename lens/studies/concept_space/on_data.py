"""concept_space on any model: the translation and repetition tasks built from a word
translations dataset (:mod:`lens.studies.concept_space.tasks`), decoded with the logit lens."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from lens.studies.base import jsonable
from lens.studies.concept_space.config import Config
from lens.studies.concept_space.data import ConceptSpaceData
from lens.studies.concept_space.findings import findings
from lens.studies.concept_space.panels import decode_panel, summarize
from lens.studies.concept_space.report import Result
from lens.studies.concept_space.tasks import build_panel, words_by_language


def _chosen(what: str, chosen: list[str] | None, known: list[str]) -> list[str]:
    if chosen is None:
        return known
    bad = [x for x in chosen if x not in known]
    if bad:
        raise ValueError(f"unknown {what} {bad}; the data has {known}")
    return list(chosen)


def run_on_data(model: Any, config: Config, dataset: Any, source: str, label: str) -> Result:
    """Build the task panels from ``dataset`` (translations), decode them and check the
    "pivot first, target last" pattern per group (translation, repetition).

    ``source`` names the dataset in the report, ``label`` the model.
    """
    words = words_by_language(dataset.records)
    if config.pivot not in words:
        raise ValueError(f"pivot {config.pivot!r} is not in the data; it has {sorted(words)}")
    code = [x for x in config.code_languages if x in words]
    langs = [x for x in words if x != config.pivot and x not in code]
    sources = _chosen("source languages", config.sources, langs)
    targets = _chosen("target languages", config.targets, langs)
    pairs = []
    if "translation" in config.tasks:
        pairs += [(s, t) for s in sources for t in targets if s != t]
    if "repetition" in config.tasks:
        pairs += [(t, t) for t in targets]
    built = [
        build_panel(
            model,
            words,
            s,
            t,
            config.pivot,
            code,
            config.n_shots,
            config.max_items,
            config.seed,
        )
        for s, t in pairs
    ]
    panels = []
    for p in tqdm(built, desc="concept space", disable=len(built) < 4):
        if not p.prompts:
            continue
        job = {
            "name": p.name,
            "kind": p.kind,
            "group": p.kind if p.kind == "repetition" else "translate to language",
            "src": p.src,
            "tgt": p.tgt,
            "prompts": p.prompts,
            "target answer": p.answers,
            "pivot answer": p.pivot_words,
        }
        panel = decode_panel(model, job, p.words, None, config.batch_size)
        panel["concepts"] = p.concepts
        panel["excluded"] = p.excluded
        panels.append(panel)
    if not panels:
        raise ValueError(
            "no items to decode: every concept was excluded or the chosen languages have no "
            "common concepts (check sources/targets/tasks and the data)"
        )
    n_layers = int(model.cfg.n_layers)
    data = {
        "n_layers": n_layers,
        "layers": list(range(n_layers)),
        "pivot": config.pivot,
        "panels": panels,
        "summary": summarize(panels, config.min_mass),
        "source": source,
        "excluded": {p.name: len(p.excluded) for p in built},
    }
    typed = ConceptSpaceData.from_dict(jsonable(data))
    return Result(
        config=config.to_dict(),
        model=label,
        data=typed,
        findings=findings(typed.summary, config.min_mass),
    )
