"""Measuring the refusal study: candidates, selection, held-out evaluation."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interventions.directions import ActivationAddition, DirectionAblation
from interventions.orthogonalize import orthogonalize
from lens.finders.diff_in_means import diff_in_means
from lens.finders.select_direction import CandidateScore, NoDirectionFound, select_direction
from lens.hooks import apply
from lens.studies._organism_data import model_label
from lens.studies.base import jsonable
from lens.studies.recovery import planted_truth
from lens.studies.refusal.config import Config
from lens.studies.refusal.data import RefusalData
from lens.studies.refusal.findings import findings
from lens.studies.refusal.findings import transfer as transfer_finding
from lens.studies.refusal.flags import refusal_flags
from lens.studies.refusal.gate import baseline_refusal, not_studied, shared_fields
from lens.studies.refusal.report import Result
from lens.studies.refusal.requests import Requests, from_dataset
from lens.tokens import batch as make_batch

# ----------------------------------------------------------------------------- data


def build_requests(model: Any, config: Config) -> Requests:
    """The organism's requests (model of the organism's world, ``data`` None), else the
    requests dataset ``config.data`` (default: the built-in ``"requests"``)."""
    from lens.studies.datasets import study_dataset

    dataset, source, world = study_dataset(model, config, config.world)
    return from_dataset(
        model,
        dataset,
        source,
        config.languages,
        config.pivot,
        config.refusal_phrases,
        (config.train_fraction, config.val_fraction),
        config.chat_template,
        config.seed,
        world=world,
    )


# ----------------------------------------------------------------------------- measures


def _rate(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


@torch.no_grad()
def _max_logit_diff(model: Any, prompts: list[str], direction: Tensor, batch_size: int) -> float:
    """max |logits(orthogonalised) - logits(hook ablation)| over the real tokens of prompts."""
    worst = 0.0
    for start in range(0, len(prompts), batch_size):
        b = make_batch(model, prompts[start : start + batch_size], padding_side="left")
        with apply(model, DirectionAblation(direction)):
            hooked = model(b.tokens, attention_mask=b.attention_mask)
        with orthogonalize(model, direction):
            baked = model(b.tokens, attention_mask=b.attention_mask)
        real = b.attention_mask.bool()
        worst = max(worst, float((hooked - baked).abs()[real].max()))
    return worst


def _score_dict(s: CandidateScore) -> dict[str, Any]:
    return {
        "layer": s.layer,
        "position": s.position,
        "bypass": s.bypass,
        "induce": s.induce,
        "kl": s.kl,
        "reason": s.reason,
    }


def _select(model: Any, req: Requests, lang: str, config: Config) -> dict[str, Any]:
    """Candidates and selection for one language; the direction as a float64 tensor."""
    harmful = req.get(lang, "train", True, config.n_train)
    harmless = req.get(lang, "train", False, config.n_train)
    cands = diff_in_means(
        model,
        harmful,
        harmless,
        layers=config.layers,
        from_end=list(config.positions),
        batch_size=config.batch_size,
        progress=False,
    )
    all_cands = cands.candidates()
    biggest = max(float(v.norm()) for v in all_cands.values())
    usable = {k: v for k, v in all_cands.items() if float(v.norm()) > 1e-6 * biggest}
    dropped = [
        CandidateScore(
            k[0],
            k[1],
            float("nan"),
            float("nan"),
            float("nan"),
            "zero direction (same token at this site)",
        )
        for k in all_cands
        if k not in usable
    ]
    val_harmful = req.get(lang, "val", True, config.n_val)
    val_harmless = req.get(lang, "val", False, config.n_val)
    refusal_tokens = req.refusal_tokens[lang]
    fallback = ""
    try:
        sel = select_direction(
            model,
            usable,
            val_harmful,
            val_harmless,
            refusal_tokens=refusal_tokens,
            kl_threshold=config.kl_threshold,
            max_layer_frac=config.max_layer_frac,
            induce_filter=config.induce_filter,
            batch_size=config.batch_size,
            progress=False,
        )
        layer, position, direction = sel.layer, sel.position, sel.direction
        scores = sel.scores
        base = (sel.baseline_harmful, sel.baseline_harmless)
    except NoDirectionFound as err:
        # Honest fallback: the lowest bypass score below the layer cap, filters ignored.
        scores = err.scores
        below = [
            s
            for s in scores
            if s.reason != "nan score" and s.layer < config.max_layer_frac * int(model.cfg.n_layers)
        ]
        best = min(below or [s for s in scores if s.reason != "nan score"], key=lambda s: s.bypass)
        layer, position = best.layer, best.position
        direction = usable[(layer, position)].detach().double().cpu()
        base = (float("nan"), float("nan"))
        fallback = f"no candidate passed the filters ({err}); took the lowest bypass score"
    by_key = {(s.layer, s.position): s for s in scores}
    chosen = by_key[(layer, position)]
    return {
        "layer": layer,
        "position": position,
        "direction": direction.double().cpu(),
        "bypass": chosen.bypass,
        "induce": chosen.induce,
        "kl": chosen.kl,
        "baseline_harmful_score": base[0],
        "baseline_harmless_score": base[1],
        "fallback": fallback,
        "n_candidates": len(all_cands),
        "candidates": {k: v.double().cpu() for k, v in all_cands.items()},
        "scores": [
            _score_dict(s) for s in sorted(scores + dropped, key=lambda s: (s.layer, s.position))
        ],
    }


# ----------------------------------------------------------------------------- run


def run(model: Any, config: Config) -> Result:
    """Run the study (see the module docstring) and return its Result."""
    config = config.for_model(model)  # layers within the model, negative ones from the end
    start = time.perf_counter()
    req = build_requests(model, config)
    langs, pivot = req.languages, req.pivot
    phrases = {g: " / ".join(req.phrases[g]) for g in langs}
    phrase_ids = req.phrase_ids
    bs = config.batch_size
    timings: dict[str, float] = {}

    # 0. does the model refuse at all? (every harmful and harmless request, no intervention)
    t0 = time.perf_counter()
    baseline = baseline_refusal(model, req, config)
    timings["baseline_s"] = time.perf_counter() - t0
    if baseline[pivot]["harmful"] < config.min_baseline_refusal:
        timings["total_s"] = time.perf_counter() - start
        return not_studied(model, config, req, phrases, baseline, timings)

    # 1-2. candidates + selection per language
    t0 = time.perf_counter()
    selection: dict[str, dict[str, Any]] = {}
    for lang in tqdm(langs, desc="refusal: select", disable=not config.progress):
        selection[lang] = _select(model, req, lang, config)
    directions = {g: selection[g]["direction"] for g in langs}
    timings["select_s"] = time.perf_counter() - t0

    # 3. held-out evaluation: all languages in one batch per intervention
    t0 = time.perf_counter()
    harmful = {g: req.get(g, "heldout", True, config.n_heldout) for g in langs}
    harmless = {g: req.get(g, "heldout", False, config.n_heldout) for g in langs}

    def by_lang(prompts: dict[str, list[str]], interventions: list[Any]) -> dict[str, Any]:
        return _by_lang(model, prompts, phrase_ids, interventions, bs)

    steps = tqdm(total=3 + 2 * len(langs), desc="refusal: evaluate", disable=not config.progress)
    base_harmful = by_lang(harmful, [])
    base_harmless = by_lang(harmless, [])
    steps.update(2)
    transfer: list[list[float]] = []
    transfer_first: list[list[float]] = []
    ablated_harmful: dict[str, Any] = {}
    for src in langs:
        res = by_lang(harmful, [DirectionAblation(directions[src])])
        transfer.append([_rate(res[t]["whole"]) for t in langs])
        transfer_first.append([_rate(res[t]["first"]) for t in langs])
        ablated_harmful[src] = res[src]
        steps.update(1)
    ablated_harmless = {}
    induced = {}
    for g in langs:
        one = {g: harmless[g]}
        ablated_harmless[g] = by_lang(one, [DirectionAblation(directions[g])])[g]
        add = ActivationAddition(
            directions[g], layer=selection[g]["layer"], coeff=config.addition_coeff
        )
        induced[g] = by_lang(one, [add])[g]
        steps.update(1)
    refusal: dict[str, dict[str, float]] = {}
    for g in langs:
        refusal[g] = {
            "harmful_before": _rate(base_harmful[g]["whole"]),
            "harmful_after": _rate(ablated_harmful[g]["whole"]),
            "harmless_before": _rate(base_harmless[g]["whole"]),
            "harmless_after_ablation": _rate(ablated_harmless[g]["whole"]),
            "harmless_with_addition": _rate(induced[g]["whole"]),
            "harmful_before_first_token": _rate(base_harmful[g]["first"]),
            "harmful_after_first_token": _rate(ablated_harmful[g]["first"]),
            "harmless_before_first_token": _rate(base_harmless[g]["first"]),
            "harmless_after_ablation_first_token": _rate(ablated_harmless[g]["first"]),
            "harmless_with_addition_first_token": _rate(induced[g]["first"]),
            "n_harmful": len(harmful[g]),
            "n_harmless": len(harmless[g]),
        }
    timings["evaluate_s"] = time.perf_counter() - t0

    # orthogonalised weights vs hook ablation (pivot direction, every held-out request)
    t0 = time.perf_counter()
    r = directions[pivot]
    every = [p for g in langs for p in harmful[g] + harmless[g]]
    refs = [phrase_ids[g] for g in langs for _ in harmful[g] + harmless[g]]
    hooked_reply = refusal_flags(
        model, every, refs, interventions=[DirectionAblation(r)], batch_size=bs
    )[2]
    with orthogonalize(model, r):
        baked_reply = refusal_flags(model, every, refs, interventions=[], batch_size=bs)[2]
    agree = [bool((a == b).all()) for a, b in zip(hooked_reply, baked_reply)]
    ortho = {
        "direction_of": pivot,
        "n_prompts": len(every),
        "generation_agreement": _rate(agree),
        "max_logit_diff": _max_logit_diff(model, every, r, bs),
        "reply_tokens": int(hooked_reply.shape[1]),
    }
    steps.update(1)
    steps.close()
    timings["orthogonalize_s"] = time.perf_counter() - t0

    # cosine similarities: selected directions, and the candidates at the pivot's site
    cos = _cosine_matrix(torch.stack([directions[g] for g in langs]))
    site = (selection[pivot]["layer"], selection[pivot]["position"])
    at_site = torch.stack([selection[g]["candidates"][site] for g in langs])
    cos_site = _cosine_matrix(at_site) if bool((at_site.norm(dim=-1) > 0).all()) else None
    timings["total_s"] = time.perf_counter() - start

    data = {
        **shared_fields(model, config, req, phrases, baseline, timings),
        "n_prompts": {
            g: {
                "train": len(req.get(g, "train", True, config.n_train)),
                "val": len(req.get(g, "val", True, config.n_val)),
                "heldout": len(harmful[g]),
            }
            for g in langs
        },
        "selection": {
            g: {k: v for k, v in selection[g].items() if k not in ("direction", "candidates")}
            for g in langs
        },
        "directions": {g: directions[g].tolist() for g in langs},
        "refusal": refusal,
        "transfer": transfer,
        "transfer_first_token": transfer_first,
        "cosine": cos.tolist(),
        "cosine_at_pivot_site": {
            "layer": site[0],
            "position": site[1],
            "matrix": None if cos_site is None else cos_site.tolist(),
        },
        "orthogonalize": ortho,
    }
    truth = planted_truth(model, "refusal")
    if truth is not None:
        data["recovery"] = _recovery(truth, data, config)
    typed = RefusalData.from_dict(jsonable(data))  # strict JSON, so a loaded result is equal
    return Result(
        config=config.to_dict(),
        model=model_label(model),
        data=typed,
        findings=findings(typed, config),
    )


def _by_lang(
    model: Any,
    prompts: dict[str, list[str]],
    phrase_ids: dict[str, list[list[int]]],
    interventions: list[Any],
    batch_size: int,
) -> dict[str, dict[str, Any]]:
    """``refusal_flags`` of every language's prompts in one pass, split back per language."""
    flat = [p for g in prompts for p in prompts[g]]
    refs = [phrase_ids[g] for g in prompts for _ in prompts[g]]
    whole, first, reply = refusal_flags(
        model, flat, refs, interventions=interventions, batch_size=batch_size
    )
    out, i = {}, 0
    for g, items in prompts.items():
        n = len(items)
        out[g] = {"whole": whole[i : i + n], "first": first[i : i + n], "reply": reply[i : i + n]}
        i += n
    return out


def _cosine_matrix(vectors: Tensor) -> Tensor:
    unit = vectors.double() / vectors.double().norm(dim=-1, keepdim=True)
    return unit @ unit.T


def _recovery(truth: dict[str, Any], data: dict[str, Any], config: Config) -> dict[str, Any]:
    """Found directions vs the planted ones, and transfer found exactly when it was planted
    (``truth["shared"]``: one direction for every language)."""
    from lens.studies.recovery import direction_recovery

    typed = RefusalData.from_dict(jsonable(data))
    found = transfer_finding(typed, config).reproduced
    what = "shared refusal direction" if truth["shared"] else "per-language refusal directions"
    checks = {
        ("transfer found" if truth["shared"] else "no transfer found"): (found == truth["shared"])
    }
    return direction_recovery(data["directions"], truth["directions"], what, checks=checks)
