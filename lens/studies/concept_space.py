"""concept_space: in which "language" does the model hold the answer on its way through the layers?

Logit lens (``lens.logit_lens``, final norm recomputed per layer) at the last prompt position,
while the organism translates a word (``[src] word [tgt]``) or answers a fact query in a
non-pivot language or code notation. Per layer it reads the probability of

* ``target answer``: the correct word in the target language (what the model must output),
* ``pivot answer``: the same concept's word in the pivot language (English),
* ``source word``: the word being translated (translations only; copying),

and the probability mass of token categories taken from the organism's ground truth
(``lens.organism.token_languages``): every pivot-language token, every target-language
token, and every code token (notation tokens).

The question (arXiv 2506.01074 for code, 2504.04264 for facts; after "do Llamas work in
English?"): do middle layers put more mass on the pivot-language answer than on the
target-language answer before the last layers switch to the target?
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from lens.studies._organism_data import (
    language_token_ids,
    non_pivot_scripts,
    organism_world,
    word_ids,
)
from lens.studies.base import Finding, StudyConfig, StudyResult, register_study

ANSWERS = ("target answer", "pivot answer", "source word")
CATEGORIES = ("target language", "pivot language", "code")


@dataclass
class Config(StudyConfig):
    """What to decode.

    Attributes:
        sources: source languages/notations of the translations (None: every non-pivot one).
        targets: target languages/notations (None: every non-pivot one). The pivot is left
            out by default: with the pivot as source or target, "pivot answer" would be the
            source word or the answer itself.
        kinds: lexicon kinds translated (``lens.organism.translation_pairs``).
        max_items: items per translation pair (None: all; else sampled with ``seed``).
        fact_scripts: languages/notations whose fact queries are decoded (None: every
            non-pivot one; [] for none). Queries whose answer is the pivot word itself
            (shared city and person names) are left out.
        fact_heldout: None = every fact; False = facts trained in that language; True = held out.
        max_facts: fact queries per language (None: all; else sampled with ``seed``).
        min_mass: the pivot answer must reach this probability in a middle layer for the
            "pivot first" pattern to count (guards against comparing two near-zero numbers).
        batch_size: prompts per forward.
        organism_folder: a trained organism folder (None: the shipped organism).
    """

    sources: list[str] | None = None
    targets: list[str] | None = None
    kinds: list[str] = field(default_factory=lambda: ["concept"])
    max_items: int | None = None
    fact_scripts: list[str] | None = None
    fact_heldout: bool | None = False
    max_facts: int | None = None
    min_mass: float = 0.05
    batch_size: int = 256
    organism_folder: str | None = None


def quick_config() -> Config:
    """Two sources, two targets, a few items each (seconds)."""
    return Config(
        sources=["ka", "py"],
        targets=["mu", "lisp"],
        max_items=12,
        fact_scripts=["ro", "py"],
        max_facts=16,
    )


@dataclass
class Result(StudyResult):
    """``data["panels"]``: one entry per translation pair / fact language with per-layer mean
    curves (``mass[name]``, a list over layers) and top-1 shares; ``data["summary"]``: the
    per-group aggregate curves and the "pivot first" check of every panel."""

    study: ClassVar[str] = "concept_space"
    title: ClassVar[str] = "Concept space: pivot vs target language per layer (logit lens)"

    def headline(self) -> str:
        groups = self.data["summary"]["groups"]
        counts = ", ".join(
            f"{g} {s['check']['panels_holding']}/{s['check']['n_panels']}"
            for g, s in groups.items()
        )
        top = max(groups.values(), key=lambda s: s["check"]["pivot_peak"])["check"]
        return (
            f"pivot answer ahead of target in middle layers: {counts} panels; largest mean "
            f"pivot-answer probability {top['pivot_peak']:.2f} (layer {top['peak_layer']}, "
            f"target {top['target_at_peak']:.2f} there)"
        )

    def report_body(self) -> str:
        return _report_body(self.data, self.config)

    def plots(self, out: Path) -> list[Path]:
        from lens.studies.concept_space_plots import plot_groups, plot_panels

        paths = []
        kinds = {p["kind"] for p in self.data["panels"]}
        for kind in ("translation", "facts"):
            if kind in kinds:
                paths.append(plot_panels(self.data, kind, out / f"{kind}_panels.png"))
        paths.append(plot_groups(self.data, out / "summary.png"))
        return paths


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
    world = organism_world(model, config.organism_folder)
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
        panels.append(_decode_panel(model, job, cats, config.batch_size))
    if not panels:
        raise ValueError("no items to decode: check sources/targets/kinds/fact_scripts")
    data = {
        "n_layers": int(model.cfg.n_layers),
        "layers": list(range(int(model.cfg.n_layers))),
        "pivot": world.pivot,
        "panels": panels,
    }
    data["summary"] = _summarize(panels, config.min_mass)
    return Result(
        config=config.to_dict(),
        model=_model_label(model, config),
        data=data,
        findings=_findings(data["summary"], config.min_mass),
    )


# ---------------------------------------------------------------------- measuring


def _sample(items: list, n: int | None, rng: random.Random) -> list:
    if n is None or n >= len(items):
        return items
    keep = sorted(rng.sample(range(len(items)), n))
    return [items[i] for i in keep]


def _decode_panel(
    model: Any, job: dict[str, Any], cats: dict[str, set[int]], batch_size: int
) -> dict[str, Any]:
    """Mean (over items) per-layer probability of each answer word and category mass."""
    import lens

    mass: dict[str, list[float]] = {}
    top1: dict[str, list[float]] = {}
    for j, name in enumerate(a for a in ANSWERS if a in job):
        ids = word_ids(model, job[name])
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
        if j == 0:
            for c, cname in enumerate(res.category_names):
                mass[cname] = res.category_mass[:, :, 0, c].mean(axis=1).tolist()
    return {
        "name": job["name"],
        "kind": job["kind"],
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


def _group_of(panel: dict[str, Any], notations: set[str]) -> str:
    if panel["kind"] == "facts":
        return "facts"
    return "translate to code" if panel["tgt"] in notations else "translate to language"


def _summarize(panels: list[dict[str, Any]], min_mass: float) -> dict[str, Any]:
    from lens.organism.world import NOTATIONS

    for p in panels:
        p["check"] = pivot_first(p["mass"]["pivot answer"], p["mass"]["target answer"], min_mass)
    groups: dict[str, Any] = {}
    names = sorted(
        {_group_of(p, set(NOTATIONS)) for p in panels},
        key=["translate to language", "translate to code", "facts"].index,
    )
    for g in names:
        members = [p for p in panels if _group_of(p, set(NOTATIONS)) == g]
        keys = [k for k in members[0]["mass"] if all(k in m["mass"] for m in members)]
        curves = {k: np.mean([m["mass"][k] for m in members], axis=0).tolist() for k in keys}
        check = pivot_first(curves["pivot answer"], curves["target answer"], min_mass)
        check["panels_holding"] = sum(m["check"]["holds"] for m in members)
        check["n_panels"] = len(members)
        groups[g] = {"panels": [m["name"] for m in members], "mass": curves, "check": check}
    return {"groups": groups, "min_mass": min_mass}


_CLAIMS = {
    "translate to language": "Translating between non-pivot languages, middle layers put more "
    "probability on the pivot-language (English) word than on the target word, and the last "
    "layers switch to the target (latent pivot language).",
    "translate to code": "Translating into a code notation, middle layers favour the "
    "pivot-language word over the code token before the last layers switch to the code "
    "token (English as the pivot of code models).",
    "facts": "Answering a fact in a non-pivot language or notation, middle layers favour the "
    "pivot-language answer before the last layers switch to the target language (knowledge "
    "in a shared, English-leaning concept space).",
}


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def _findings(summary: dict[str, Any], min_mass: float) -> list[Finding]:
    out = []
    for group, s in summary["groups"].items():
        c, m = s["check"], s["mass"]
        if c["layers_pivot_ahead"]:
            ahead = (
                f"the pivot answer leads at layers {c['layers_pivot_ahead']} (peak "
                f"{c['pivot_peak']:.3f} at layer {c['peak_layer']} vs target "
                f"{c['target_at_peak']:.3f})"
            )
        else:
            ahead = (
                f"no layer before the last has the pivot answer ahead with mass >= "
                f"{min_mass} (largest pivot probability {c['pivot_peak']:.3f} at layer "
                f"{c['peak_layer']}, target there {c['target_at_peak']:.3f})"
            )
        evidence = (
            f"Mean over {c['n_panels']} panels: {ahead}; last layer target "
            f"{c['target_final']:.3f} vs pivot {c['pivot_final']:.3f}. Per layer, "
            f"pivot {_fmt(m['pivot answer'])}, target {_fmt(m['target answer'])}. "
            f"The pattern holds in {c['panels_holding']}/{c['n_panels']} panels."
        )
        out.append(Finding(_CLAIMS[group], bool(c["holds"]), evidence))
    return out


def _model_label(model: Any, config: Config) -> str:
    return f"organism ({config.organism_folder})" if config.organism_folder else "organism"


# ---------------------------------------------------------------------- report


def _report_body(data: dict[str, Any], config: dict[str, Any]) -> str:
    lines = [
        "Each number is a probability read with the logit lens at the last prompt position "
        "(the position that predicts the answer), averaged over the items of a panel. "
        "`target` is the probability of the correct answer word in the target language, "
        "`pivot` that of the same concept's word in the pivot language "
        f"(`{data['pivot']}`), `source` that of the word being translated; the category "
        "masses sum the probability of every token of the target language, of the pivot "
        "language, and of the code notations (token languages from the organism's ground "
        "truth). The last layer is the model's own output.",
        "",
        f'"Pivot first" counts for a panel when a layer before the last has pivot > target '
        f"with pivot >= {data['summary']['min_mass']}, and the last layer has target > pivot.",
    ]
    for group, s in data["summary"]["groups"].items():
        lines += [
            "",
            f"### {group} (mean of {s['check']['n_panels']} panels)",
            "",
            "| layer | " + " | ".join(s["mass"]) + " |",
            "|---|" + "---|" * len(s["mass"]),
        ]
        for layer in data["layers"]:
            row = " | ".join(f"{s['mass'][k][layer]:.3f}" for k in s["mass"])
            lines.append(f"| {layer} | {row} |")
    lines += [
        "",
        "### Per panel",
        "",
        "| panel | n | pivot first | peak pivot (layer) | target there | last layer "
        "target / pivot | target stays ahead from layer |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in data["panels"]:
        c = p["check"]
        lines.append(
            f"| {p['name']} | {p['n']} | {'yes' if c['holds'] else 'no'} | "
            f"{c['pivot_peak']:.3f} ({c['peak_layer']}) | {c['target_at_peak']:.3f} | "
            f"{c['target_final']:.3f} / {c['pivot_final']:.3f} | "
            f"{c['switch_layer'] if c['switch_layer'] is not None else '-'} |"
        )
    return "\n".join(lines)


register_study("concept_space", sys.modules[__name__])
