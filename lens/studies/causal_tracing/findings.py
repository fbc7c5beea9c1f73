"""The paper's early-site claim, checked per language against the study's numbers."""

from __future__ import annotations

from lens.studies.base import Finding
from lens.studies.base import fmt_number as _num
from lens.studies.causal_tracing.data import CausalTracingData


def early_site(lang: str, entry: dict, n_layers: int) -> tuple[bool, str]:
    """Whether the MLP effect at the last subject token peaks in the middle layers (from a
    sixth to two thirds of the depth) above its peak at later subject-free tokens; and the
    evidence in plain words."""
    if entry["n_prompts"] == 0:
        return False, "no prompt in this language is answered right: nothing to trace."
    peak, height = entry["mlp_peak_layer"], entry["mlp_last_subject_peak"]
    further = entry["mlp_further_peak"]
    middle = n_layers / 6 <= peak < 2 * n_layers / 3
    above = height > max(further or 0.0, 0.0)
    where = "a middle layer" if middle else "not a middle layer"
    evidence = (
        f"peak at layer {peak} of {n_layers} ({where}; effect {_num(height)}, "
        f"{'above' if above else 'not above'} the further tokens' {_num(further)}; "
        f"{entry['n_prompts']} prompts)."
    )
    return bool(middle and above), evidence


def findings(data: CausalTracingData) -> list[Finding]:
    """One finding per language: does the early site show up?"""
    out = []
    for lang, entry in data.languages.items():
        reproduced, evidence = early_site(lang, entry, data.n_layers)
        out.append(
            Finding(
                f"[{lang}] early site: restoring MLP outputs at the last subject token matters "
                "most in middle layers, more than at later subject-free tokens.",
                reproduced,
                evidence,
            )
        )
    return out
