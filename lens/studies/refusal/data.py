"""The refusal study's numbers, as saved in results.json's ``"data"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from lens.studies.base import StudyData


class CandidateScoreDict(TypedDict):
    """One candidate's selection scores (None where not computed) and why it was dropped."""

    layer: int
    position: int
    bypass: float | None
    induce: float | None
    kl: float | None
    reason: str


class Selection(TypedDict):
    """The direction selected for one language: its site, scores, the baselines the scores
    are relative to, ``fallback`` (why the filters were ignored; ``""`` when they were not)
    and every candidate's scores."""

    layer: int
    position: int
    bypass: float | None
    induce: float | None
    kl: float | None
    baseline_harmful_score: float | None
    baseline_harmless_score: float | None
    fallback: str
    n_candidates: int
    scores: list[CandidateScoreDict]


@dataclass
class RefusalData(StudyData):
    """Typed top level of the refusal study's numbers.

    Attributes:
        languages, pivot: the studied languages and the pivot among them.
        positions: the candidates' offsets from each prompt's end; n_layers: model depth.
        refusal_phrases: each language's refusal phrase.
        n_prompts: ``{lang: {"train"|"val"|"heldout": harmful requests used}}``.
        selection: ``{lang: {layer, position, bypass, induce, kl, fallback, scores, ...}}``.
        directions: ``{lang: the selected direction as a list of floats}``.
        refusal: ``{lang: {harmful_before, harmful_after, harmless_before,
            harmless_after_ablation, harmless_with_addition, *_first_token, n_*}}``.
        transfer, transfer_first_token: ``[s][t]`` refusal on harmful requests of language t
            with the direction of language s ablated.
        cosine: ``[s][t]`` cosine of the selected directions; cosine_at_pivot_site: the same
            for every language's candidate at the pivot's (layer, position).
        orthogonalize: weight orthogonalisation vs hook ablation (agreement, max logit diff).
        timings: seconds per stage.
        source, prompt_format: where the requests come from and how they became prompts.
        baseline: ``{lang: {harmful, harmless, *_first_token, n_*, *_examples}}``: refusal
            rates of every request without intervention (measured first).
        min_baseline_refusal: the pivot's harmful rate the study needs to go on.
        studied: False when the baseline was too low: everything after it is empty.
    """

    languages: list[str]
    pivot: str
    positions: list[int]
    n_layers: int
    refusal_phrases: dict[str, str]
    n_prompts: dict[str, dict[str, int]]
    selection: dict[str, Selection]
    directions: dict[str, list[float]]
    refusal: dict[str, dict[str, Any]]
    transfer: list[list[float | None]]
    transfer_first_token: list[list[float | None]]
    cosine: list[list[float | None]]
    cosine_at_pivot_site: dict[str, Any]
    orthogonalize: dict[str, Any]
    timings: dict[str, float]
    source: str = "organism"
    prompt_format: str = "the organism's own request format"
    baseline: dict[str, dict[str, Any]] | None = None
    min_baseline_refusal: float | None = None
    studied: bool = True
    recovery: dict[str, Any] | None = None  # vs planted truth (lens.studies.recovery)
