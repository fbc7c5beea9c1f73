"""The concept_space study's numbers, as saved in results.json's ``"data"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from lens.studies.base import StudyData


class PivotCheck(TypedDict):
    """The "pivot first, target last" check of one curve pair
    (:func:`~lens.studies.concept_space.panels.pivot_first`)."""

    holds: bool
    layers_pivot_ahead: list[int]
    peak_layer: int
    pivot_peak: float
    target_at_peak: float
    pivot_final: float
    target_final: float
    switch_layer: int | None


class _PanelBase(TypedDict):
    name: str
    kind: str
    group: str
    src: str
    tgt: str
    n: int
    prompts: list[str]
    answers: list[str]
    pivot_words: list[str]
    mass: dict[str, list[float]]
    top1: dict[str, list[float]]
    check: PivotCheck


class Panel(_PanelBase, total=False):
    """One decoded task (translation pair, fact language or repetition): its items, the
    probability ``mass`` per curve and layer, ``top1`` and the pivot-first ``check``; panels
    built from a dataset add the ``concepts`` decoded and those ``excluded``."""

    concepts: list[str]
    excluded: list[str]


class GroupCheck(PivotCheck):
    """The check of a group's mean curves, and how many of its panels hold on their own."""

    panels_holding: int
    n_panels: int


class Group(TypedDict):
    """Panels of one group (e.g. "translate to language"), their mean curves and check."""

    panels: list[str]
    mass: dict[str, list[float]]
    check: GroupCheck


class Summary(TypedDict):
    """Per-group summaries and the mass threshold of the check."""

    groups: dict[str, Group]
    min_mass: float


@dataclass
class ConceptSpaceData(StudyData):
    """Typed top level of the concept_space study's numbers.

    Attributes:
        n_layers, layers: model depth and the decoded layers.
        pivot: the pivot language.
        panels: one dict per translation pair / fact language: ``name``, ``kind``
            (``"translation"`` or ``"facts"``), ``src``, ``tgt``, ``n``, ``prompts``,
            ``answers``, ``pivot_words``, ``mass`` (``{curve: [per layer]}``), ``top1`` and
            ``check`` (:func:`~lens.studies.concept_space.panels.pivot_first`).
        summary: ``{"groups": {group: {panels, mass, check}}, "min_mass": float}``.
        source: where the panels come from: ``"organism"`` (its world) or a dataset.
        excluded: concepts left out per dataset panel (target and pivot words share a first
            token); None on the organism.
        recovery: the translation groups' pivot-ahead band vs the planted latent pivot's
            layers on the planted organism (:func:`lens.studies.recovery.layer_recovery`);
            None elsewhere.
    """

    n_layers: int
    layers: list[int]
    pivot: str
    panels: list[Panel]
    summary: Summary
    source: str = "organism"
    excluded: dict[str, int] | None = None
    recovery: dict[str, Any] | None = None  # vs planted truth (lens.studies.recovery)
