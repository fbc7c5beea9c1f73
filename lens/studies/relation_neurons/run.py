"""Measuring the relation-neuron study: selection, drop matrices, cumulativity, overlap."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor
from tqdm.auto import tqdm

from interventions.neurons import NeuronDeactivation, neurons_by_layer
from lens.finders.average_precision import average_precision_neurons, default_k
from lens.studies._organism_data import model_label, split
from lens.studies.answers import (
    Answers,
    AnswerScoring,
    SkippedAnswer,
    score_answers,
    tokenize_answers,
)
from lens.studies.base import (
    jsonable,
    off_diagonal,
)
from lens.studies.datasets import study_dataset
from lens.studies.facts import FactQuery, fact_queries, pivot_language
from lens.studies.neuron_sets import random_like
from lens.studies.recovery import neuron_recovery, planted_truth
from lens.studies.relation_neurons.config import Config
from lens.studies.relation_neurons.data import RelationNeuronsData
from lens.studies.relation_neurons.findings import findings
from lens.studies.relation_neurons.report import Result


@dataclass
class Queries:
    """Fact queries whose answers the model can express, tokenized (:mod:`lens.studies.answers`),
    with their language and relation as indexes; ``skipped``: the queries left out."""

    answers: Answers
    lang: Int[Tensor, " n"]
    relation: Int[Tensor, " n"]
    skipped: list[SkippedAnswer]

    def __len__(self) -> int:
        return len(self.answers)


def make_queries(
    model: Any, qs: list[FactQuery], langs: list[str], relations: list[str]
) -> Queries:
    """FactQuery list -> :class:`Queries` (language and relation as indexes)."""
    items = tokenize_answers(model, [q.prompt for q in qs], [q.answer for q in qs])
    kept = [qs[i] for i in items.kept]
    return Queries(
        answers=items,
        lang=torch.tensor([langs.index(q.language) for q in kept], dtype=torch.long),
        relation=torch.tensor([relations.index(q.relation) for q in kept], dtype=torch.long),
        skipped=items.skipped,
    )


def correct(
    model: Any,
    queries: Queries,
    *,
    interventions: list[Any] | tuple = (),
    batch_size: int = 128,
    scoring: AnswerScoring = "first_token",
) -> Bool[Tensor, " n"]:
    """Whether each query is answered correctly (``scoring``), under ``interventions``."""
    return score_answers(
        model, queries.answers, interventions=interventions, scoring=scoring, batch_size=batch_size
    ).hit


def accuracy_table(ok: Bool[Tensor, " n"], queries: Queries, n_lang: int, n_rel: int) -> np.ndarray:
    """``[lang, relation]`` accuracy (nan where a cell has no query)."""
    idx = queries.lang * n_rel + queries.relation
    hits = torch.bincount(idx, weights=ok.double(), minlength=n_lang * n_rel)
    count = torch.bincount(idx, minlength=n_lang * n_rel).double()
    acc = torch.where(count > 0, hits / count.clamp_min(1), torch.nan)
    return acc.view(n_lang, n_rel).numpy()


def drops(
    model: Any,
    queries: Queries,
    sets: list[dict[int, list[int]]],
    base: np.ndarray,
    shape: tuple[int, int],
    batch_size: int,
    desc: str,
    scoring: AnswerScoring = "first_token",
) -> np.ndarray:
    """``[lang, i, j]`` accuracy drop on relation j with ``sets[i]`` deactivated."""
    n_lang, n_rel = shape
    out = np.zeros((n_lang, len(sets), n_rel))
    for i, neurons in enumerate(tqdm(sets, desc=desc, leave=False)):
        ok = correct(
            model,
            queries,
            interventions=[NeuronDeactivation(neurons)],
            batch_size=batch_size,
            scoring=scoring,
        )
        out[:, i, :] = base - accuracy_table(ok, queries, n_lang, n_rel)
    return out


def _setup(model: Any, config: Config) -> dict[str, Any]:
    """Data, languages, relations and the subject split (organism: its world's order)."""
    dataset, source, world = study_dataset(model, config)
    queries = [q for q in fact_queries(dataset, world) if not q.heldout]
    known = list(dict.fromkeys(q.language for q in queries))
    lang = config.language or pivot_language(known, world)
    others = config.transfer_languages
    others = [x for x in known if x != lang] if others is None else list(others)
    unknown = [x for x in [lang, *others] if x not in known]
    if unknown:
        raise ValueError(f"unknown languages {unknown}; the data has {known}")
    if world is not None:
        relations, subjects = list(world.relations), list(world.persons)
    else:
        relations = list(dict.fromkeys(q.relation for q in queries))
        subjects = list(dict.fromkeys(q.subject for q in queries))
    if len(relations) < 2:
        raise ValueError(f"relation_neurons needs at least two relations, the data has {relations}")
    sel, ev = split(subjects, config.selection_fraction, config.seed)
    langs = [lang, *[x for x in others if x != lang]]
    return {
        "source": source,
        "world": world,
        "queries": [q for q in queries if q.language in langs],
        "lang": lang,
        "langs": langs,
        "relations": relations,
        "sel_subjects": set(sel),
        "eval_subjects": set(ev),
    }


def _chance(world: Any, queries: list[FactQuery], lang: str, relation: str) -> float:
    """Chance accuracy of a relation: the organism's pool, else 1 / its distinct answers."""
    if world is not None:
        return world.chance(relation)
    answers = {q.answer for q in queries if q.language == lang and q.relation == relation}
    return 1.0 / max(1, len(answers))


def _skipped(queries: Queries, qs: list[FactQuery]) -> list[dict[str, str]]:
    return [{"id": qs[s.index].id, "answer": s.answer, "reason": s.reason} for s in queries.skipped]


def run(model: Any, config: Config) -> Result:
    """Run the study; see the package docstring.

    Facts come from ``config.data`` (default: the organism's own facts on the organism, lens's
    built-in real facts on any other model); answers are scored by ``config.scoring``.
    """
    start = time.perf_counter()
    setup = _setup(model, config)
    world, lang, langs = setup["world"], setup["lang"], setup["langs"]
    relations, all_qs = setup["relations"], setup["queries"]
    sel_subjects, eval_subjects = setup["sel_subjects"], setup["eval_subjects"]
    k = config.k or default_k(model)
    total = int(model.cfg.n_layers) * int(model.cfg.d_mlp)
    grid = sorted({min(total, max(1, round(m * k))) for m in config.multipliers()} | {k})
    bs, scoring = config.batch_size, config.scoring

    # 1. selection
    sel = [q for q in all_qs if q.language == lang and q.subject in sel_subjects]
    ap = average_precision_neurons(
        model,
        [q.prompt for q in sel],
        [q.relation for q in sel],
        k=max(grid),
        neg_ratio=config.neg_ratio,
        seed=config.seed,
        batch_size=config.batch_size,
        progress=config.progress,
    )
    top = {r: ap.top[r] for r in relations}
    sets = [neurons_by_layer(top[r][:k]) for r in relations]
    t_select = time.perf_counter() - start

    # 2. evaluation queries (trained facts of the evaluation subjects), every language
    qs = [q for x in langs for q in all_qs if q.language == x and q.subject in eval_subjects]
    queries = make_queries(model, qs, langs, relations)
    shape = (len(langs), len(relations))
    base = accuracy_table(
        correct(model, queries, interventions=(), batch_size=bs, scoring=scoring), queries, *shape
    )
    base_lang = [float(np.nanmean(row)) if not np.isnan(row).all() else 0.0 for row in base]
    near_zero = [x for x, b in zip(langs, base_lang) if b < config.min_accuracy]
    measured = [i for i, x in enumerate(langs) if x not in near_zero or x == lang]
    keep = torch.isin(queries.lang, torch.tensor(measured))
    usable = _rows(queries, keep)
    drop = drops(model, usable, sets, base, shape, config.batch_size, "drop matrix", config.scoring)
    drop[[i for i in range(len(langs)) if i not in measured]] = np.nan
    own = _rows(queries, queries.lang == 0)
    per_rel = [
        _rows(queries, (queries.lang == 0) & (queries.relation == i)) for i in range(shape[1])
    ]

    # 7. random baseline (selection language)
    width = int(model.cfg.d_mlp)
    base_own = base[:1]
    one = (1, len(relations))
    rand = []
    for s in range(config.n_random_seeds):
        gen = torch.Generator().manual_seed(config.seed * 1000 + s)
        rsets = [random_like(n, width, gen) for n in sets]
        rand.append(
            drops(
                model, own, rsets, base_own, one, config.batch_size, f"random {s}", config.scoring
            )
        )

    # 4. cumulativity on the selection language (random: own relation's queries only)
    curve, curve_off, rcurve = [], [], []
    for kk in tqdm(grid, desc="cumulativity", leave=False):
        ksets = [neurons_by_layer(top[r][:kk]) for r in relations]
        m = (
            drop[:1]
            if kk == k
            else drops(
                model, own, ksets, base_own, one, config.batch_size, f"k={kk}", config.scoring
            )
        )
        curve.append(float(np.mean(np.diag(m[0]))))
        curve_off.append(float(np.mean(off_diagonal(m[0]))))
        vals = []
        for s in range(config.n_random_seeds):
            gen = torch.Generator().manual_seed(config.seed * 1000 + 100 + s)
            for i, n in enumerate(ksets):
                if len(per_rel[i]) == 0:
                    continue
                dea = NeuronDeactivation(random_like(n, width, gen))
                ok = correct(model, per_rel[i], interventions=[dea], batch_size=bs, scoring=scoring)
                vals.append(base[0, i] - float(ok.double().mean()))
        rcurve.append(float(np.mean(vals)) if vals else None)

    # 5. overlap
    keyed = [set(top[r][:k]) for r in relations]
    jac = [[len(a & b) / len(a | b) for b in keyed] for a in keyed]
    owners: dict[tuple[int, int], int] = {}
    for s_ in keyed:
        for p in s_:
            owners[p] = owners.get(p, 0) + 1
    shared = sum(1 for c in owners.values() if c > 1)

    rand_mean = np.mean(rand, axis=0) if rand else np.full_like(drop, np.nan)
    data = {
        "language": lang,
        "languages": langs,
        "relations": relations,
        "k": k,
        "k_grid": grid,
        "n_neurons_total": total,
        "n_selection_prompts": len(sel),
        "n_eval_prompts": {x: int((queries.lang == i).sum()) for i, x in enumerate(langs)},
        "selection_subjects": sorted(sel_subjects),
        "eval_subjects": sorted(eval_subjects),
        "chance": [_chance(world, all_qs, lang, r) for r in relations],
        "neurons": {r: [list(p) for p in top[r][:k]] for r in relations},
        "ap_of_selected": {
            r: [float(ap.scores[i, ap.layers.index(la), j]) for la, j in top[r][:k]]
            for i, r in enumerate(relations)
        },
        "per_layer": [
            [sum(1 for la, _ in top[r][:k] if la == layer) for layer in ap.layers]
            for r in relations
        ],
        "layers": ap.layers,
        "base_accuracy": base,
        "drop": drop,
        "random_drop": rand,
        "random_mean": rand_mean,
        "cumulativity": {"k": grid, "own": curve, "others": curve_off, "random_own": rcurve},
        "jaccard": jac,
        "n_shared_neurons": shared,
        "n_distinct_neurons": len(owners),
        "seconds": {"selection": t_select, "total": time.perf_counter() - start},
        "source": setup["source"],
        "scoring": config.scoring,
        "near_zero": near_zero,
        "min_accuracy": config.min_accuracy,
        "skipped": _skipped(queries, qs),
    }
    truth = planted_truth(model, "relation_neurons")
    if truth is not None and truth["language"] == lang:
        found = {r: [list(p) for p in top[r][:k]] for r in relations}
        data["recovery"] = neuron_recovery(found, truth["neurons"], "relation neurons")
    typed = RelationNeuronsData.from_dict(jsonable(data))
    return Result(
        config=config.to_dict(), model=model_label(model), data=typed, findings=findings(typed)
    )


def _rows(queries: Queries, mask: Bool[Tensor, " n"]) -> Queries:
    """The queries where ``mask`` is True (skipped ones are not repeated)."""
    rows = torch.nonzero(mask).flatten().tolist()
    return Queries(queries.answers.subset(rows), queries.lang[rows], queries.relation[rows], [])
