"""The fact_consistency study's numbers, as saved in results.json's ``"data"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lens.studies.answers import AnswerScoring
from lens.studies.base import StudyData


@dataclass
class FactConsistencyData(StudyData):
    """Typed top level of the fact_consistency study's numbers.

    Attributes:
        pivot, scripts: the pivot and every measured language/notation (pivot first).
        facts: indexes of the facts evaluated; heldout: ``{script: held-out fact indexes}``.
        n_layers: model depth.
        source: the dataset (file or built-in name); scoring: how answers were scored;
        fact_ids: the dataset id of every fact in ``facts``; skipped: ``{language: [{"id",
            "answer", "reason"}]}`` queries whose answer the model cannot tokenize (left out);
        near_zero: languages whose baseline recall is below ``min_recall`` (no CLC).
        final: the final model: ``recall``, ``recall_split`` (trained / held out),
            ``correct`` (``C_L``: sorted fact indexes per script), ``clc``,
            ``mean_recall_others``, ``mean_clc``.
        training: ``{"points": [{"step", "label", **final-like}]}`` or ``{"points": [],
            "note"}``; None when checkpoints were not measured.
        shortcut: fit/eval facts, ``full`` (the full model on the eval facts) and ``layers``
            (one final-like entry per source layer, with ``agreement``, ``mean_recall``,
            ``recall_kept``); None when no shortcut was fitted.
    """

    pivot: str
    scripts: list[str]
    facts: list[int]
    n_layers: int
    heldout: dict[str, list[int]]
    final: dict[str, Any]
    training: dict[str, Any] | None = None
    shortcut: dict[str, Any] | None = None
    source: str = "organism-facts"
    scoring: AnswerScoring = "first_token"
    fact_ids: list[str] | None = None
    skipped: dict[str, list[dict[str, str]]] | None = None
    near_zero: list[str] | None = None
    min_recall: float | None = None
