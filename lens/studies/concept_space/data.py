"""The concept_space study's numbers, as saved in results.json's ``"data"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lens.studies.base import StudyData


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
    """

    n_layers: int
    layers: list[int]
    pivot: str
    panels: list[dict[str, Any]]
    summary: dict[str, Any]
    source: str = "organism"
    excluded: dict[str, int] | None = None
