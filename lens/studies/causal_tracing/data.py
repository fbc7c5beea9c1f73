"""The causal tracing study's numbers, as saved in results.json's ``"data"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lens.studies.base import StudyData


@dataclass
class CausalTracingData(StudyData):
    """Typed top level of the causal tracing study's numbers.

    Attributes:
        window: layers restored together for the MLP and attention traces (centred on each
            layer, clipped at the first and last layer as in ROME).
        n_layers: model depth.
        languages: ``{lang: {...}}`` with ``n_prompts`` (0: no prompt answered right, nothing
            else is stored), and otherwise ``prompts``, ``sigma`` (the noise std),
            ``noise_rule`` (how sigma was set, in words), ``clean_prob``, ``corrupt_prob`` (mean
            answer probability, clean and subject-noised), ``by_role`` (``{"resid" | "mlp" |
            "attn": [layer][role]}`` mean indirect effect, None where no prompt has the role),
            ``mlp_peak_layer`` and ``mlp_last_subject_peak`` (where and how high the MLP
            effect at the last subject token peaks) and ``mlp_further_peak`` (the MLP effect's
            peak at subject-free tokens before the last one; None when the prompts have none).
        recovery: the MLP peak layer vs the planted fact pathway's layer on the planted
            organism (:func:`lens.studies.recovery.layer_recovery`); None elsewhere.
        noise, noise_from: sigma is ``noise`` x the token-embedding std of ``"subjects"``
            (each language's fact subjects, ROME's recipe) or of the ``"prompts"``.
    """

    window: int
    n_layers: int
    languages: dict[str, dict[str, Any]]
    noise: float = 3.0
    noise_from: str = "prompts"
    recovery: dict[str, Any] | None = None  # vs planted truth (lens.studies.recovery)
