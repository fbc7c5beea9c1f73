"""The relation-neuron study's numbers, as saved in results.json's ``"data"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from lens.studies.answers import AnswerScoring
from lens.studies.base import StudyData


class Cumulativity(TypedDict):
    """Mean drops over ``k`` (neurons per relation): own relation, other relations, and own
    relation with random neurons (None where no random set could be drawn)."""

    k: list[int]
    own: list[float]
    others: list[float]
    random_own: list[float | None]


@dataclass
class RelationNeuronsData(StudyData):
    """Typed top level of the relation-neuron study's numbers.

    Attributes:
        language: the selection language; languages: it, then the transfer languages.
        relations: the relations; k: neurons per relation; k_grid: the cumulativity k values.
        n_neurons_total: MLP neurons of the model.
        n_selection_prompts, n_eval_prompts: prompts used (selection / per language evaluated).
        selection_subjects, eval_subjects: the subject split.
        chance: chance accuracy per relation.
        neurons: ``{relation: [[layer, neuron], ...]}`` (top k); ap_of_selected: their scores.
        per_layer: ``[relation][layer]`` selected counts; layers: the MLP layers.
        base_accuracy: ``[lang][relation]`` accuracy without intervention.
        drop: ``[lang][i][j]`` accuracy drop on relation j with relation i's neurons zeroed;
            random_drop (one per seed) and random_mean: the same with random neurons
            (selection language only).
        cumulativity: ``{"k", "own", "others", "random_own"}`` curves over ``k_grid``.
        jaccard: ``[a][b]`` overlap of the neuron sets; n_shared_neurons, n_distinct_neurons.
        seconds: timings.
        source: the dataset (file or built-in name); scoring: how answers were scored.
        near_zero: languages whose mean baseline accuracy is below ``min_accuracy`` (their
            drop rows are None: not measured).
        skipped: evaluation queries whose answer the model cannot tokenize (left out).
        recovery: precision and recall of the selected neurons vs the planted ones on the
            planted organism (:func:`lens.studies.recovery.neuron_recovery`); None elsewhere.
    """

    language: str
    languages: list[str]
    relations: list[str]
    k: int
    k_grid: list[int]
    n_neurons_total: int
    n_selection_prompts: int
    n_eval_prompts: dict[str, int]
    selection_subjects: list[str]
    eval_subjects: list[str]
    chance: list[float]
    neurons: dict[str, list[list[int]]]
    ap_of_selected: dict[str, list[float]]
    per_layer: list[list[int]]
    layers: list[int]
    base_accuracy: list[list[float | None]]
    drop: list[list[list[float | None]]]
    random_drop: list[list[list[list[float | None]]]]
    random_mean: list[list[list[float | None]]]
    cumulativity: Cumulativity
    jaccard: list[list[float]]
    n_shared_neurons: int
    n_distinct_neurons: int
    seconds: dict[str, float]
    source: str = "organism-facts"
    scoring: AnswerScoring = "first_token"
    near_zero: list[str] | None = None
    min_accuracy: float | None = None
    skipped: list[dict[str, str]] | None = None
    recovery: dict[str, Any] | None = None  # vs planted truth (lens.studies.recovery)
