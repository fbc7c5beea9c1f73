"""Settings of the language-neuron study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from lens.studies.base import StudyConfig
from lens.studies.config_types import Items, Range


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
    languages: Annotated[list[str] | None, Items(1, unique=True)] = None
    max_texts: Annotated[int | None, Range(2)] = 300
    eval_fraction: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.25
    top_rate: Annotated[float, Range(0, 1, open_low=True)] = 0.05
    filter_rate: Annotated[float, Range(0, 1)] = 0.95
    activation_bar_ratio: Annotated[float, Range(0, 1)] = 0.95
    exclusive_only: bool = False
    n_random_seeds: Annotated[int, Range(1, 100)] = 3
    batch_size: Annotated[int, Range(1, 65536)] = 64


def quick_config() -> Config:
    """A few seconds on the organism."""
    return Config(max_texts=60, n_random_seeds=1)
