"""The concept_space study's claims, checked against its numbers."""

from __future__ import annotations

from lens.studies.base import Finding
from lens.studies.concept_space.data import Summary

_CLAIMS = {
    "translate to language": "Translating between non-pivot languages, middle layers put more "
    "probability on the pivot-language (English) word than on the target word, and the last "
    "layers switch to the target (latent pivot language).",
    "translate to code": "Translating into a code notation, middle layers favour the "
    "pivot-language word over the code token before the last layers switch to the code "
    "token (English as the pivot of code models).",
    "repetition": 'Repeating a non-pivot word (``Deutsch: "Blume" - Deutsch: "``), middle '
    "layers put more probability on the pivot-language (English) word than on the word itself "
    "before the last layers return to it.",
    "facts": "Answering a fact in a non-pivot language or notation, middle layers favour the "
    "pivot-language answer before the last layers switch to the target language (knowledge "
    "in a shared, English-leaning concept space).",
}


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def findings(summary: Summary, min_mass: float) -> list[Finding]:
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
