"""The language-neuron study's numbers, as saved in results.json's ``"data"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lens.studies.base import StudyData


@dataclass
class LanguageNeuronsData(StudyData):
    """Typed top level of the language-neuron study's numbers.

    Attributes:
        corpus: where the texts come from: ``"organism"`` (its own corpora) or the dataset
            (file or built-in name); languages: the studied languages.
        layers: MLP layers; n_neurons_total: neurons over all of them; n_selected: LAPE kept.
        n_stat_texts, n_eval_texts, n_eval_tokens, eval_texts: texts per language (statistics
            / held-out evaluation) and the held-out texts themselves.
        filter_threshold, activation_bar: the LAPE thresholds reached.
        neurons, exclusive: ``{lang: [[layer, neuron], ...]}`` (all / only that language's).
        n_neurons, n_exclusive, deactivated: counts per language.
        per_layer: ``[lang][layer]`` neuron counts; edge_layers: the bottom and top layers.
        overlap: ``[a][b]`` neurons shared by languages a and b.
        base_loss: loss per language without intervention.
        increase, random_mean: ``[i][j]`` loss increase on language j with language i's
            (random) neurons zeroed; random_increase: one such matrix per seed.
        stats, random_stats: :func:`~lens.studies.language_neurons.run.diagonal_stats`.
        seconds: timings.
    """

    corpus: str
    languages: list[str]
    layers: list[int]
    n_neurons_total: int
    n_selected: int
    n_stat_texts: dict[str, int]
    n_eval_texts: dict[str, int]
    eval_texts: dict[str, list[str]]
    n_eval_tokens: dict[str, int]
    filter_threshold: float
    activation_bar: float
    neurons: dict[str, list[list[int]]]
    exclusive: dict[str, list[list[int]]]
    n_neurons: dict[str, int]
    n_exclusive: dict[str, int]
    deactivated: dict[str, int]
    per_layer: list[list[int]]
    edge_layers: list[int]
    overlap: list[list[int]]
    base_loss: list[float]
    increase: list[list[float | None]]
    random_increase: list[list[list[float | None]]]
    random_mean: list[list[float | None]]
    stats: dict[str, Any]
    random_stats: dict[str, Any]
    seconds: dict[str, float]
    recovery: dict[str, Any] | None = None  # vs planted truth (lens.studies.recovery)
