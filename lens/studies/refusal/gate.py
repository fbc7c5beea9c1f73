"""Does the model refuse at all? The refusal study's baseline, measured before anything else.

A direction from harmful - harmless differences means "refusal" only if the model refuses
harmful requests and answers harmless ones. When its baseline refusal rate of harmful requests
in the pivot language is below ``config.min_baseline_refusal``, the study stops there and
reports the baseline instead of a direction and findings that would mean nothing.
"""

from __future__ import annotations

from typing import Any

from lens.generate import greedy_tokens
from lens.studies._organism_data import model_label
from lens.studies.base import Finding, jsonable
from lens.studies.refusal.config import Config
from lens.studies.refusal.data import RefusalData
from lens.studies.refusal.report import Result
from lens.studies.refusal.requests import Requests


def baseline_refusal(model: Any, req: Requests, config: Config) -> dict[str, dict[str, Any]]:
    """Per language, the refusal rate of every harmful and every harmless request (no
    intervention), the first-token rate, counts, and a few greedy replies as examples."""
    from lens.studies.refusal.flags import refusal_flags

    rows: list[tuple[str, str, str, str]] = []  # (lang, class, prompt, text)
    for g in req.languages:
        for cls in ("harmful", "harmless"):
            prompts, texts = req.every(g, cls == "harmful")
            rows += [(g, cls, p, t) for p, t in zip(prompts, texts)]
    whole, first, _ = refusal_flags(
        model,
        [r[2] for r in rows],
        [req.phrase_ids[r[0]] for r in rows],
        batch_size=config.batch_size,
    )
    # longer replies for the few shown as examples only (generation costs one forward a token)
    shown = [
        i
        for g in req.languages
        for cls in ("harmful", "harmless")
        for i in [k for k, r in enumerate(rows) if r[0] == g and r[1] == cls][: config.n_examples]
    ]
    replies = {}
    if shown:
        ids = greedy_tokens(
            model,
            [rows[i][2] for i in shown],
            max_new_tokens=config.example_tokens,
        )
        replies = {
            i: model.tokenizer.decode(ids[k].tolist(), skip_special_tokens=True)
            for k, i in enumerate(shown)
        }
    out: dict[str, dict[str, Any]] = {}
    for g in req.languages:
        entry: dict[str, Any] = {}
        for cls in ("harmful", "harmless"):
            idx = [i for i, r in enumerate(rows) if r[0] == g and r[1] == cls]
            entry[cls] = sum(whole[i] for i in idx) / len(idx) if idx else float("nan")
            entry[f"{cls}_first_token"] = sum(first[i] for i in idx) / len(idx) if idx else None
            entry[f"n_{cls}"] = len(idx)
            entry[f"{cls}_examples"] = [[rows[i][3], replies[i]] for i in idx[: config.n_examples]]
        out[g] = entry
    return out


def shared_fields(
    model: Any,
    config: Config,
    req: Requests,
    phrases: dict[str, str],
    baseline: dict[str, dict[str, Any]],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The results fields every refusal run records, studied or stopped at the baseline."""
    return {
        "languages": req.languages,
        "pivot": req.pivot,
        "positions": list(config.positions),
        "n_layers": int(model.cfg.n_layers),
        "refusal_phrases": phrases,
        "timings": timings,
        "source": req.source,
        "prompt_format": req.prompt_format,
        "baseline": baseline,
        "min_baseline_refusal": config.min_baseline_refusal,
    }


def not_studied(
    model: Any,
    config: Config,
    req: Requests,
    phrases: dict[str, str],
    baseline: dict[str, dict[str, Any]],
    timings: dict[str, float],
) -> Result:
    """The Result of a model that hardly refuses: its baseline, and one failed precondition."""
    langs, pivot = req.languages, req.pivot
    data = {
        **shared_fields(model, config, req, phrases, baseline, timings),
        "n_prompts": {},
        "selection": {},
        "directions": {},
        "refusal": {},
        "transfer": [],
        "transfer_first_token": [],
        "cosine": [],
        "cosine_at_pivot_site": {},
        "orthogonalize": {},
        "studied": False,
    }
    typed = RefusalData.from_dict(jsonable(data))
    b = baseline[pivot]
    rates = ", ".join(
        f"{g} {baseline[g]['harmful']:.2f} ({baseline[g]['n_harmful']} requests)" for g in langs
    )
    finding = Finding(
        claim=f"Precondition of every claim of the refusal papers: the model refuses harmful "
        f"requests (refusal rate of harmful {pivot} requests >= {config.min_baseline_refusal:g}).",
        reproduced=False,
        evidence=f"Refusal rate of harmful requests: {rates}; of harmless {pivot} requests "
        f"{b['harmless']:.2f}. No direction, ablation, transfer, similarity, addition or "
        "orthogonalisation was computed: a difference of means between requests the model "
        "treats alike would be a direction with nothing to mediate.",
    )
    return Result(config=config.to_dict(), model=model_label(model), data=typed, findings=[finding])
