"""The refusal papers' claims, checked against the study's numbers."""

from __future__ import annotations

from typing import Any

from lens.studies.base import (
    Finding,
    off_diagonal,
)
from lens.studies.refusal.config import Config

# ----------------------------------------------------------------------------- findings


def findings(data: dict[str, Any], config: Config) -> list[Finding]:
    """The papers' qualitative claims, checked against the numbers in ``data``."""
    langs, pivot = data["languages"], data["pivot"]
    ref = data["refusal"]
    p = langs.index(pivot)
    out = []

    drop = {g: ref[g]["harmful_before"] - ref[g]["harmful_after"] for g in langs}
    per_lang = ", ".join(
        f"{g} {ref[g]['harmful_before']:.2f} -> {ref[g]['harmful_after']:.2f}" for g in langs
    )
    out.append(
        Finding(
            claim=f"Ablating the selected direction lowers harmful refusal by "
            f">= {config.min_drop:g} (absolute) in the pivot language ({pivot}).",
            reproduced=drop[pivot] >= config.min_drop,
            evidence=f"Held-out harmful refusal before -> after ablating each language's own "
            f"direction: {per_lang}.{_fallback_text(data, config)}",
        )
    )

    others = [g for g in langs if g != pivot]
    if others:
        after = {t: data["transfer"][p][langs.index(t)] for t in others}
        drops = {t: ref[t]["harmful_before"] - after[t] for t in others}
        out.append(
            Finding(
                claim=f"Ablating the pivot-language ({pivot}) direction also removes harmful "
                "refusal in every other language (cross-lingual transfer).",
                reproduced=min(drops.values()) >= config.min_drop,
                evidence="Refusal after ablating the pivot direction: "
                + ", ".join(f"{t} {ref[t]['harmful_before']:.2f} -> {after[t]:.2f}" for t in others)
                + f" (criterion: a drop of >= {config.min_drop:g} in each; "
                f"smallest drop {min(drops.values()):.2f} in {min(drops, key=drops.get)}).",
            )
        )
        off = off_diagonal(data["cosine"])
        out.append(
            Finding(
                claim="The languages' refusal directions are highly similar (high cosine "
                "similarity between languages).",
                reproduced=float(off.mean()) >= config.min_cosine,
                evidence="Cosine similarity of the selected directions: "
                f"mean off-diagonal {float(off.mean()):.2f}, "
                f"min {float(off.min()):.2f}, max {float(off.max()):.2f} "
                f"(criterion: mean >= {config.min_cosine:g}); "
                f"selected (layer, position): "
                + ", ".join(
                    f"{g} ({data['selection'][g]['layer']}, {data['selection'][g]['position']})"
                    for g in langs
                )
                + f". {_site_cosine_text(data)}",
            )
        )
    else:
        out.append(
            Finding(
                claim="Cross-lingual transfer and similarity need at least two languages.",
                reproduced=False,
                evidence="Only one language was studied.",
            )
        )

    induced = {g: ref[g]["harmless_with_addition"] for g in langs}
    mean_induced = sum(induced.values()) / len(induced)
    out.append(
        Finding(
            claim=f"Activation addition of the direction induces refusal on harmless requests at "
            f"rate {mean_induced:.2f} (mean over languages).",
            reproduced=mean_induced >= config.min_induced,
            evidence="Held-out harmless refusal without -> with the addition (own direction, own "
            "layer, coeff "
            f"{config.addition_coeff:g}): "
            + ", ".join(f"{g} {ref[g]['harmless_before']:.2f} -> {induced[g]:.2f}" for g in langs)
            + f" (criterion: mean >= {config.min_induced:g}).",
        )
    )

    o = data["orthogonalize"]
    out.append(
        Finding(
            claim="The weight-orthogonalised model agrees with hook ablation.",
            reproduced=o["generation_agreement"] == 1.0
            and o["max_logit_diff"] <= config.max_logit_diff,
            evidence=f"{o['generation_agreement']:.3f} of {o['n_prompts']} greedy replies "
            f"({o['reply_tokens']} tokens) identical; max |logit difference| "
            f"{o['max_logit_diff']:.2e} (criterion: all identical and <= "
            f"{config.max_logit_diff:g}).",
        )
    )
    return out


def _fallback_text(data: dict[str, Any], config: Config) -> str:
    fell = [g for g in data["languages"] if data["selection"][g]["fallback"]]
    if not fell:
        return ""
    return (
        f" No candidate passed the selection filters (KL <= {config.kl_threshold:g}, induce "
        f">= 0, layer < {config.max_layer_frac:g} of the depth) in {', '.join(fell)}: there the "
        "direction is the candidate with the lowest bypass score below the layer cap."
    )


def _site_cosine_text(data: dict[str, Any]) -> str:
    site = data["cosine_at_pivot_site"]
    if site["matrix"] is None:
        return "At the pivot's site some language has a zero candidate."
    return (
        f"The candidates at the pivot's site (layer {site['layer']}, position "
        f"{site['position']}) have mean off-diagonal cosine "
        f"{off_diagonal(site['matrix']).mean():.2f}."
    )
