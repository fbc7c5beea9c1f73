"""Settings of the language-neuron study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lens.studies.base import StudyConfig


@dataclass
class Config(StudyConfig):
    """Settings of the language-neuron study (defaults for the organism).

    Attributes:
        data: a texts dataset (file or built-in name; None: the organism's single-language
            corpora on the organism, the built-in ``"texts"`` on any other model).
        languages: languages/notations to study (None = all of the data).
        max_texts: texts per language used at most (sampled with ``seed``; None = all).
        eval_fraction: share of each language's texts held out for the loss matrix (never used
            for the statistics).
        top_rate, filter_rate, activation_bar_ratio: LAPE thresholds. The paper keeps 1 % of
            the neurons of 7B models (thousands); the organism has 2,304 MLP neurons shared by
            7 scripts, so 5 % (115 neurons) is the default here.
        exclusive_only: deactivate only each language's exclusive neurons.
        n_random_seeds: random same-size neuron sets per language for the baseline.
        batch_size: examples per forward.
    """

    data_kind: ClassVar[str | None] = "texts"
    languages: list[str] | None = None
    max_texts: int | None = 300
    eval_fraction: float = 0.25
    top_rate: float = 0.05
    filter_rate: float = 0.95
    activation_bar_ratio: float = 0.95
    exclusive_only: bool = False
    n_random_seeds: int = 3
    batch_size: int = 64


def quick_config() -> Config:
    """A few seconds on the organism."""
    return Config(max_texts=60, n_random_seeds=1)
