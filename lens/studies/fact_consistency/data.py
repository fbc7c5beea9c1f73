"""The fact_consistency study's numbers, as saved in results.json's ``"data"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from lens.studies.answers import AnswerScoring
from lens.studies.base import StudyData


class Measured(TypedDict):
    """Recall and cross-lingual consistency of one model (per language/notation).

    ``recall_split`` is ``{script: {"trained", "heldout"}}``; ``correct`` (``C_L``) the sorted
    indexes of the facts answered right; ``clc`` None for the pivot's partners with near-zero
    recall."""

    recall: dict[str, float | None]
    recall_split: dict[str, dict[str, float | None]]
    correct: dict[str, list[int]]
    clc: dict[str, float | None]
    mean_recall_others: float | None
    mean_clc: float | None


class TrainingPoint(Measured):
    """One checkpoint (the last point is the final model)."""

    step: int
    label: str


class _TrainingPoints(TypedDict):
    points: list[TrainingPoint]


class Training(_TrainingPoints, total=False):
    """Consistency over training; ``note`` says why ``points`` is empty."""

    note: str


class ShortcutFull(Measured):
    """The full model on the shortcut's evaluation facts."""

    mean_recall: float


class ShortcutLayer(Measured):
    """The model with a linear shortcut from ``layer`` to the last layer."""

    layer: int
    agreement: float
    mean_recall: float
    recall_kept: float | None


class Shortcut(TypedDict):
    """Linear shortcuts: facts fitted on / evaluated on, the full model, one entry per layer."""

    fit_facts: list[int]
    eval_facts: list[int]
    n_fit_prompts: int
    method: str
    full: ShortcutFull
    layers: list[ShortcutLayer]


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
        recovery: on a planted organism, the best shortcut's recall and CLC vs the full
            model's against the planted late path (:func:`lens.studies.recovery
            .effect_recovery`; ``planted: False`` on the other variants); None elsewhere.
    """

    pivot: str
    scripts: list[str]
    facts: list[int]
    n_layers: int
    heldout: dict[str, list[int]]
    final: Measured
    training: Training | None = None
    shortcut: Shortcut | None = None
    source: str = "organism-facts"
    scoring: AnswerScoring = "first_token"
    fact_ids: list[str] | None = None
    skipped: dict[str, list[dict[str, str]]] | None = None
    near_zero: list[str] | None = None
    min_recall: float | None = None
    recovery: dict[str, Any] | None = None  # vs planted truth (lens.studies.recovery)
