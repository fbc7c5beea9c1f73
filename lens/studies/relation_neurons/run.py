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

from interventions.neurons import NeuronDeactivation
from lens.finders.average_precision import average_precision_neurons, default_k
from lens.hooks import apply
from lens.studies._organism_data import model_label, organism_world, split
from lens.studies.base import (
    jsonable,
    off_diagonal,
)
from lens.studies.neuron_sets import random_like
from lens.studies.relation_neurons.config import Config
from lens.studies.relation_neurons.data import RelationNeuronsData
from lens.studies.relation_neurons.findings import findings
from lens.studies.relation_neurons.report import Result
from lens.tokens import Batch
from lens.tokens import batch as make_batch


@dataclass
class Queries:
    """Fact queries as one left-padded batch, with gold first-answer tokens and groups."""

    batch: Batch
    gold: Int[Tensor, " n"]
    lang: Int[Tensor, " n"]
    relation: Int[Tensor, " n"]


def make_queries(model: Any, qs: list[Any], langs: list[str], relations: list[str]) -> Queries:
    """FactQuery list -> :class:`Queries` (language and relation as indexes)."""
    prompts = [q.prompt for q in qs]
    return Queries(
        batch=make_batch(model, prompts, padding_side="left"),
        gold=torch.tensor(gold_tokens(model, prompts, [q.answer for q in qs])),
        lang=torch.tensor([langs.index(q.lang) for q in qs]),
        relation=torch.tensor([relations.index(q.relation) for q in qs]),
    )


def gold_tokens(model: Any, prompts: list[str], answers: list[str]) -> list[int]:
    """First token of each answer after its prompt (tokenizing ``prompt + " " + answer``).

    Example:
        >>> import lens                                               # doctest: +SKIP
        >>> gold_tokens(lens.load_model("organism"), ["the job of alice is"], ["lawyer"])
        ... # doctest: +SKIP
    """
    tok = model.tokenizer
    plain = tok(prompts, add_special_tokens=False)["input_ids"]
    full = tok([f"{p} {a}" for p, a in zip(prompts, answers)], add_special_tokens=False)
    out = []
    for p, a, f, prompt in zip(plain, answers, full["input_ids"], prompts):
        if len(f) <= len(p) or list(f[: len(p)]) != list(p):
            raise ValueError(f"{prompt!r} + {a!r}: the prompt's tokens are not a prefix")
        out.append(int(f[len(p)]))
    return out


@torch.no_grad()
def correct(
    model: Any, queries: Queries, interventions: list[Any] | tuple = (), batch_size: int = 128
) -> Bool[Tensor, " n"]:
    """Whether the last-position argmax equals the gold token, for every query."""
    out = []
    b = queries.batch
    last = b.last_positions
    with apply(model, *interventions):
        for s in range(0, len(b), batch_size):
            logits = model(
                b.tokens[s : s + batch_size], attention_mask=b.attention_mask[s : s + batch_size]
            )
            rows = torch.arange(logits.shape[0])
            out.append(logits[rows, last[s : s + batch_size]].argmax(-1).cpu())
    return torch.cat(out) == queries.gold


def accuracy_table(ok: Bool[Tensor, " n"], queries: Queries, n_lang: int, n_rel: int) -> np.ndarray:
    """``[lang, relation]`` accuracy (nan where a cell has no query)."""
    idx = queries.lang * n_rel + queries.relation
    hits = torch.bincount(idx, weights=ok.double(), minlength=n_lang * n_rel)
    count = torch.bincount(idx, minlength=n_lang * n_rel).double()
    acc = torch.where(count > 0, hits / count.clamp_min(1), torch.nan)
    return acc.view(n_lang, n_rel).numpy()


def prefix_by_layer(pairs: list[tuple[int, int]], k: int) -> dict[int, list[int]]:
    """The first ``k`` (layer, neuron) pairs as ``{layer: [neurons]}``."""
    out: dict[int, list[int]] = {}
    for layer, j in pairs[:k]:
        out.setdefault(layer, []).append(j)
    return out


def drops(
    model: Any,
    queries: Queries,
    sets: list[dict[int, list[int]]],
    base: np.ndarray,
    shape: tuple[int, int],
    batch_size: int,
    desc: str,
) -> np.ndarray:
    """``[lang, i, j]`` accuracy drop on relation j with ``sets[i]`` deactivated."""
    n_lang, n_rel = shape
    out = np.zeros((n_lang, len(sets), n_rel))
    for i, neurons in enumerate(tqdm(sets, desc=desc, leave=False)):
        ok = correct(model, queries, [NeuronDeactivation(neurons)], batch_size)
        out[:, i, :] = base - accuracy_table(ok, queries, n_lang, n_rel)
    return out


def run(model: Any, config: Config) -> Result:
    """Run the study; see the module docstring."""
    from lens.organism import fact_queries

    start = time.perf_counter()
    world = organism_world(model, required=False)
    if world is None:
        raise ValueError(
            "relation_neurons needs the organism (its relation prompts and ground "
            "truth): load it with lens.load_model('organism')"
        )
    lang = config.language or world.pivot
    others = config.transfer_languages
    others = [x for x in world.scripts if x != lang] if others is None else list(others)
    unknown = [x for x in [lang, *others] if x not in world.scripts]
    if unknown:
        raise ValueError(f"unknown languages {unknown}; the organism has {world.scripts}")
    langs = [lang, *[x for x in others if x != lang]]
    relations = list(world.relations)
    k = config.k or default_k(model)
    total = int(model.cfg.n_layers) * int(model.cfg.d_mlp)
    grid = sorted({min(total, max(1, round(m * k))) for m in config.multipliers()} | {k})
    sel_subjects, eval_subjects = split(list(world.persons), config.selection_fraction, config.seed)
    sel_subjects, eval_subjects = set(sel_subjects), set(eval_subjects)

    # 1. selection
    sel = [q for q in fact_queries(world, lang, heldout=False) if q.subject in sel_subjects]
    ap = average_precision_neurons(
        model,
        [q.prompt for q in sel],
        [q.relation for q in sel],
        k=max(grid),
        neg_ratio=config.neg_ratio,
        seed=config.seed,
        batch_size=config.batch_size,
        progress=True,
    )
    top = {r: ap.top[r] for r in relations}
    sets = [prefix_by_layer(top[r], k) for r in relations]
    t_select = time.perf_counter() - start

    # 2. evaluation queries (trained facts of the evaluation subjects), every language
    qs = [
        q
        for x in langs
        for q in fact_queries(world, x, heldout=False)
        if q.subject in eval_subjects
    ]
    queries = make_queries(model, qs, langs, relations)
    own_qs = [q for q in qs if q.lang == lang]
    own = make_queries(model, own_qs, langs, relations)
    per_rel = [
        make_queries(model, [q for q in own_qs if q.relation == r], langs, relations)
        for r in relations
    ]
    shape = (len(langs), len(relations))
    base = accuracy_table(correct(model, queries, (), config.batch_size), queries, *shape)
    drop = drops(model, queries, sets, base, shape, config.batch_size, "drop matrix")
    # 7. random baseline (selection language)
    width = int(model.cfg.d_mlp)
    base_own = base[:1]
    one = (1, len(relations))
    rand = []
    for s in range(config.n_random_seeds):
        gen = torch.Generator().manual_seed(config.seed * 1000 + s)
        rsets = [random_like(n, width, gen) for n in sets]
        rand.append(drops(model, own, rsets, base_own, one, config.batch_size, f"random {s}"))

    # 4. cumulativity on the selection language (random: own relation's queries only)
    curve, curve_off, rcurve = [], [], []
    for kk in tqdm(grid, desc="cumulativity", leave=False):
        ksets = [prefix_by_layer(top[r], kk) for r in relations]
        m = (
            drop[:1]
            if kk == k
            else drops(model, own, ksets, base_own, one, config.batch_size, f"k={kk}")
        )
        curve.append(float(np.mean(np.diag(m[0]))))
        curve_off.append(float(np.mean(off_diagonal(m[0]))))
        vals = []
        for s in range(config.n_random_seeds):
            gen = torch.Generator().manual_seed(config.seed * 1000 + 100 + s)
            for i, n in enumerate(ksets):
                ok = correct(
                    model,
                    per_rel[i],
                    [NeuronDeactivation(random_like(n, width, gen))],
                    config.batch_size,
                )
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
        "chance": [world.chance(r) for r in relations],
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
    }
    typed = RelationNeuronsData.from_dict(jsonable(data))
    return Result(
        config=config.to_dict(), model=model_label(model), data=typed, findings=findings(typed)
    )
