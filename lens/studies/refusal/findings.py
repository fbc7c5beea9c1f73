"""The refusal papers' claims, checked against the study's numbers.

Each finding reproduces only when its own stated criterion holds, every part of it; the
evidence says in plain words which part failed.
"""

from __future__ import annotations

from typing import Any

from lens.studies.base import Finding, fmt_number, off_diagonal
from lens.studies.refusal.config import Config
from lens.studies.refusal.data import RefusalData


def findings(data: RefusalData, config: Config) -> list[Finding]:
    """The papers' qualitative claims, checked against the numbers in ``data``."""
    out = [pivot_ablation(data, config)]
    others = [g for g in data.languages if g != data.pivot]
    if others:
        out += [transfer(data, config), similarity(data, config)]
    else:
        out.append(
            Finding(
                claim="Cross-lingual transfer and similarity need at least two languages.",
                reproduced=False,
                evidence="Only one language was studied.",
            )
        )
    out += [addition(data, config), orthogonalisation(data, config)]
    return out


def filter_failure(data: RefusalData, lang: str) -> str | None:
    """Plain words for a language whose direction passed no selection filter (else None)."""
    s = data.selection[lang]
    if not s["fallback"]:
        return None
    mine = next(
        (x for x in s["scores"] if (x["layer"], x["position"]) == (s["layer"], s["position"])),
        None,
    )
    why = (
        f", rejected by the filters because {mine['reason']}: its KL is {fmt_number(s['kl'])}"
        if mine and mine["reason"]
        else ""
    )
    return (
        f"no {lang} candidate passed every selection filter, so the {lang} direction is the "
        f"fallback with the lowest bypass score (layer {s['layer']}, position "
        f"{s['position']}{why})"
    )


def pivot_ablation(data: RefusalData, config: Config) -> Finding:
    """Ablating the pivot's own direction removes harmful refusal, keeps harmless answers,
    and the direction passed the selection filters."""
    pivot, ref = data.pivot, data.refusal
    r = ref[pivot]
    drop = r["harmful_before"] - r["harmful_after"]
    rise = r["harmless_after_ablation"] - r["harmless_before"]
    failure = filter_failure(data, pivot)
    parts = [
        f"harmful refusal {r['harmful_before']:.2f} -> {r['harmful_after']:.2f} (drop "
        f"{drop:.2f}, needs >= {config.min_drop:g}: {_ok(drop >= config.min_drop)})",
        f"harmless refusal {r['harmless_before']:.2f} -> {r['harmless_after_ablation']:.2f} "
        f"under the same ablation (rise {rise:.2f}, allowed <= {config.max_harmless_rise:g}: "
        f"{_ok(rise <= config.max_harmless_rise)})",
        failure or "the direction passed the selection filters",
    ]
    own = ", ".join(
        f"{g} {ref[g]['harmful_before']:.2f} -> {ref[g]['harmful_after']:.2f}"
        for g in data.languages
        if g != pivot
    )
    others_failed = [g for g in data.languages if g != pivot and data.selection[g]["fallback"]]
    tail = (
        f" Other languages, harmful refusal with their own direction ablated: {own}." if own else ""
    )
    if others_failed:
        names = ", ".join(others_failed)
        tail += f" Fallback directions (no candidate passed the filters) in: {names}."
    return Finding(
        claim=f"Ablating the {pivot} refusal direction removes harmful refusal in {pivot} "
        f"(drop >= {config.min_drop:g}) without making harmless requests refused (rise <= "
        f"{config.max_harmless_rise:g}), with a direction that passed the selection filters.",
        reproduced=drop >= config.min_drop and rise <= config.max_harmless_rise and not failure,
        evidence=f"In {pivot}: " + "; ".join(parts) + "." + tail,
    )


def transfer(data: RefusalData, config: Config) -> Finding:
    """The pivot's direction removes harmful refusal in every other language."""
    langs, pivot, ref = data.languages, data.pivot, data.refusal
    row = data.transfer[langs.index(pivot)]
    others = [g for g in langs if g != pivot]
    after = {t: row[langs.index(t)] for t in others}
    drops = {t: ref[t]["harmful_before"] - after[t] for t in others}
    removed = [t for t in others if drops[t] >= config.min_drop]
    return Finding(
        claim=f"Ablating the {pivot} direction also removes harmful refusal in every other "
        f"language (drop >= {config.min_drop:g} in each: cross-lingual transfer).",
        reproduced=len(removed) == len(others),
        evidence=f"Refusal removed in {len(removed)} of {len(others)} other languages. Harmful "
        f"refusal with the {pivot} direction ablated: "
        + ", ".join(f"{t} {ref[t]['harmful_before']:.2f} -> {after[t]:.2f}" for t in others)
        + ".",
    )


def similarity(data: RefusalData, config: Config) -> Finding:
    """The languages' directions point the same way."""
    off = off_diagonal(data.cosine)
    sites = ", ".join(
        f"{g} ({data.selection[g]['layer']}, {data.selection[g]['position']})"
        for g in data.languages
    )
    return Finding(
        claim="The languages' refusal directions are highly similar (mean cosine similarity "
        f"between languages >= {config.min_cosine:g}).",
        reproduced=float(off.mean()) >= config.min_cosine,
        evidence=f"Mean cosine between the selected directions of different languages "
        f"{float(off.mean()):.2f} (lowest {float(off.min()):.2f}, highest "
        f"{float(off.max()):.2f}); selected (layer, position): {sites}. {_site_text(data)}",
    )


def addition(data: RefusalData, config: Config) -> Finding:
    """Adding a language's direction makes harmless requests refused."""
    ref = data.refusal
    induced = {g: ref[g]["harmless_with_addition"] for g in data.languages}
    mean = sum(induced.values()) / len(induced)
    return Finding(
        claim="Adding a language's direction at its layer makes the model refuse harmless "
        f"requests (mean refusal rate over languages >= {config.min_induced:g}).",
        reproduced=mean >= config.min_induced,
        evidence=f"Mean refusal of harmless requests with the direction added "
        f"{mean:.2f} (coefficient {config.addition_coeff:g}); per language, without -> with: "
        + ", ".join(f"{g} {ref[g]['harmless_before']:.2f} -> {induced[g]:.2f}" for g in induced)
        + ".",
    )


def orthogonalisation(data: RefusalData, config: Config) -> Finding:
    """Baking the direction into the weights equals hook ablation."""
    o = data.orthogonalize
    same = round(o["generation_agreement"] * o["n_prompts"])
    return Finding(
        claim="A model whose weights are orthogonalised to the direction behaves like hook "
        "ablation (every greedy reply identical, logits within "
        f"{config.max_logit_diff:g}).",
        reproduced=o["generation_agreement"] == 1.0
        and o["max_logit_diff"] <= config.max_logit_diff,
        evidence=f"{same} of {o['n_prompts']} greedy replies ({o['reply_tokens']} tokens each) "
        f"identical; largest logit difference {o['max_logit_diff']:.2e}.",
    )


def _ok(holds: bool) -> str:
    return "met" if holds else "NOT met"


def _site_text(data: RefusalData) -> str:
    site: dict[str, Any] = data.cosine_at_pivot_site
    if site["matrix"] is None:
        return "At the pivot's site some language has a zero candidate."
    return (
        f"Every language's candidate at the pivot's site (layer {site['layer']}, position "
        f"{site['position']}): mean cosine {off_diagonal(site['matrix']).mean():.2f}."
    )
