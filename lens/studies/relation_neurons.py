"""Relation-specific neurons (Liu et al. 2025, arXiv 2502.17355) on the organism.

1. Selection: the organism's subjects are split (``seed``) into a selection half and an
   evaluation half. On the selection subjects' fact queries in the selection language (the
   pivot by default), :func:`lens.finders.average_precision_neurons` scores every MLP neuron
   (``mlp.hook_post``, mean over the prompt's tokens) by the average precision with which it
   separates one relation's prompts from sampled other relations' prompts, and keeps the top
   ``k`` per relation (default: the paper's 3,000 of 352,256 neurons, scaled to the model).
2. Accuracy: a query is answered correctly when the argmax of the next-token logits at the
   prompt's last position is the gold answer's first token (the organism's answers are one
   token, so this equals the first token of greedy generation). Evaluated on the evaluation
   subjects' trained (not held-out) queries.
3. Drop matrix: ``drop[i, j]`` = accuracy on relation j without intervention minus accuracy
   with relation i's neurons set to 0 (``NeuronDeactivation``, every position); positive =
   worse. Negative entries are interference (accuracy improves).
4. Cumulativity: the drop on each relation's own queries as its top-k grows (``k_grid``).
5. Versatility: overlap (Jaccard) between the relations' neuron sets.
6. Multilinguality: the pivot-selected neurons deactivated on the same facts asked in the
   other languages and notations.
7. Random baseline: for each relation and seed, neurons drawn uniformly with the same count
   per layer as its set.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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
    Finding,
    StudyConfig,
    StudyResult,
    jsonable,
    off_diagonal,
    register_study,
)
from lens.studies.language_neurons import _annotate, random_like
from lens.tokens import Batch
from lens.tokens import batch as make_batch


@dataclass
class Config(StudyConfig):
    """Settings of the relation-neuron study (defaults for the organism).

    Attributes:
        language: selection language (None = the pivot).
        k: neurons per relation (None = :func:`lens.finders.average_precision.default_k`).
        k_multipliers: the cumulativity curve's k values as multiples of ``k``.
        neg_ratio: sampled negatives per positive prompt for average precision.
        selection_fraction: share of subjects whose queries select the neurons; the other
            subjects' queries are evaluated.
        transfer_languages: languages/notations for the transfer test (None = all others).
        n_random_seeds: random same-size neuron sets per relation.
        batch_size: prompts per forward.
    """

    language: str | None = None
    k: int | None = None
    k_multipliers: list[float] | None = None
    neg_ratio: float = 4.0
    selection_fraction: float = 0.5
    transfer_languages: list[str] | None = None
    n_random_seeds: int = 3
    batch_size: int = 128

    def multipliers(self) -> list[float]:
        return list(self.k_multipliers or [0.25, 0.5, 1.0, 2.0, 4.0, 8.0])


def quick_config() -> Config:
    """A few seconds on the organism."""
    return Config(k_multipliers=[0.5, 1.0], transfer_languages=["ka", "py"], n_random_seeds=1)


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
    data = jsonable(data)
    return Result(
        config=config.to_dict(), model=model_label(model), data=data, findings=findings(data)
    )


def _arr(x: Any) -> np.ndarray:
    return np.array(x, dtype=float)


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """Diagonal / off-diagonal means of the drop matrix per language, random baseline too."""
    drop, rnd = _arr(data["drop"]), _arr(data["random_mean"])
    out: dict[str, Any] = {}
    nan = np.full_like(drop[0], np.nan)
    for li, x in enumerate(data["languages"]):
        m, r = drop[li], (rnd[li] if li < len(rnd) else nan)
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


def findings(data: dict[str, Any]) -> list[Finding]:
    """The paper's claims checked against ``data`` (computed, never assumed)."""
    s = summary(data)
    lang = data["language"]
    p = s[lang]
    n_rel = len(data["relations"])
    out = [
        Finding(
            claim=f"Deactivating a relation's neurons lowers recall of that relation more than of "
            f"the others (drop-matrix diagonal > off-diagonal mean, {lang}).",
            reproduced=p["diag"] > p["off"],
            evidence=f"Mean accuracy drop on the own relation {p['diag']:.3f} vs {p['off']:.3f} "
            f"on other relations (k={data['k']} neurons each).",
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
                f"random neurons ({len(data['random_drop'])} seed(s)).",
            )
        )
    cum = data["cumulativity"]
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
    jac = off_diagonal(_arr(data["jaccard"]))
    out.append(
        Finding(
            claim="Versatility: relations share some of their neurons.",
            reproduced=data["n_shared_neurons"] > 0,
            evidence=f"{data['n_shared_neurons']} of {data['n_distinct_neurons']} selected neurons "
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
    transfer = [x for x in data["languages"] if x != lang]
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


class Result(StudyResult):
    """Numbers of the relation-neuron study; see the module docstring."""

    study: ClassVar[str] = "relation_neurons"
    title: ClassVar[str] = "Relation-specific neurons (average precision) and their deactivation"

    def headline(self) -> str:
        p = summary(self.data)[self.data["language"]]
        r = "n/a" if p["random_diag"] is None else f"{p['random_diag']:.3f}"
        return (
            f"k={self.data['k']}: own-relation accuracy drop {p['diag']:.3f} vs other "
            f"relations {p['off']:.3f} vs random {r}"
        )

    def report_body(self) -> str:
        d = self.data
        s = summary(d)
        rels = d["relations"]
        base = _arr(d["base_accuracy"])
        drop, rnd = _arr(d["drop"])[0], _arr(d["random_mean"])[0]
        lines = [
            f"Neurons were selected on {d['n_selection_prompts']} {d['language']} fact queries "
            f"of {len(d['selection_subjects'])} subjects and evaluated on the other "
            f"{len(d['eval_subjects'])} subjects' trained queries. Accuracy: the argmax of the "
            "next-token logits at the last prompt position equals the answer's first token. "
            "Drop = accuracy without intervention minus accuracy with the neurons zeroed "
            "(positive = worse).",
            "",
            f"| relation ({d['language']}) | base accuracy | chance | own drop | mean drop on "
            "others | random own drop |",
            "|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(rels):
            oth = np.mean([drop[i, j] for j in range(len(rels)) if j != i])
            rr = "n/a" if np.isnan(rnd[i, i]) else f"{rnd[i, i]:.3f}"
            lines.append(
                f"| {r} | {base[0, i]:.3f} | {d['chance'][i]:.3f} | {drop[i, i]:.3f} "
                f"| {oth:.3f} | {rr} |"
            )
        lines += [
            "",
            "| language | queries | mean base accuracy | own drop | drop on others "
            "| random own drop |",
            "|---|---|---|---|---|---|",
        ]
        for li, x in enumerate(d["languages"]):
            r = s[x]["random_diag"]
            lines.append(
                f"| {x} | {d['n_eval_prompts'][x]} | {np.nanmean(base[li]):.3f} | "
                f"{s[x]['diag']:.3f} | {s[x]['off']:.3f} | "
                f"{'n/a' if r is None else f'{r:.3f}'} |"
            )
        lines += [
            "",
            f"Time: {d['seconds']['total']:.1f} s (selection {d['seconds']['selection']:.1f} s).",
        ]
        return "\n".join(lines)

    def plots(self, out: Path) -> list[Path]:
        from lens.plots import new_figure, save_figure

        d = self.data
        rels = d["relations"]
        n = len(rels)
        paths = []
        drop, rnd = _arr(d["drop"])[0], _arr(d["random_mean"])[0]
        fig = new_figure(2 * (0.55 * n + 2.4), 0.55 * n + 2.2)
        vals = np.concatenate([drop.ravel(), rnd[~np.isnan(rnd)]])
        vmax = max(float(np.abs(vals).max()), 1e-6)
        im = None
        for p, (mat, name) in enumerate([(drop, "relation neurons"), (rnd, "random neurons")]):
            ax = fig.add_subplot(1, 2, p + 1)
            im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            _annotate(ax, mat)
            ax.set_xticks(range(n), rels, rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(n), rels, fontsize=8)
            ax.set_xlabel("accuracy measured on relation j")
            ax.set_ylabel("neurons of relation i deactivated")
            ax.set_title(f"accuracy drop ({d['language']}): {name}", fontsize=10)
        fig.colorbar(im, ax=fig.axes, shrink=0.8, label="accuracy drop")
        paths.append(save_figure(fig, out / "drop_matrix.png"))

        cum = d["cumulativity"]
        fig = new_figure(5.5, 3.8)
        ax = fig.add_subplot()
        ax.plot(cum["k"], cum["own"], "o-", label="own relation")
        ax.plot(cum["k"], cum["others"], "s--", label="other relations (mean)")
        if None not in cum["random_own"]:
            ax.plot(cum["k"], cum["random_own"], "^:", label="own relation, random neurons")
        ax.set_xscale("log")
        ax.set_xlabel("neurons deactivated per relation (k)")
        ax.set_ylabel("accuracy drop")
        ax.set_title(f"cumulativity ({d['language']})")
        ax.legend(fontsize=8)
        paths.append(save_figure(fig, out / "cumulativity.png"))

        jac = _arr(d["jaccard"])
        fig = new_figure(0.55 * n + 2.8, 0.55 * n + 2.0)
        ax = fig.add_subplot()
        im = ax.imshow(jac, cmap="Purples", vmin=0, vmax=1)
        _annotate(ax, jac)
        ax.set_xticks(range(n), rels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), rels, fontsize=8)
        ax.set_title(f"overlap of neuron sets (Jaccard, k={d['k']})", fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8)
        paths.append(save_figure(fig, out / "overlap.png"))

        s = summary(d)
        langs = d["languages"]
        fig = new_figure(max(5.0, 0.7 * len(langs) + 2), 3.6)
        ax = fig.add_subplot()
        x = np.arange(len(langs))
        ax.bar(x - 0.2, [s[la]["diag"] for la in langs], 0.4, label="own relation")
        ax.bar(x + 0.2, [s[la]["off"] for la in langs], 0.4, label="other relations")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(x, langs)
        ax.set_ylabel("mean accuracy drop")
        ax.set_title(f"neurons selected in {d['language']}, tested per language")
        ax.legend(fontsize=8)
        paths.append(save_figure(fig, out / "transfer.png"))
        return paths


register_study("relation_neurons", sys.modules[__name__])
