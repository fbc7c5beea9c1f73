"""Settings of the relation-neuron study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from lens.studies.answers import AnswerScoring
from lens.studies.base import StudyConfig
from lens.studies.config_types import Items, Range


@dataclass
class Config(StudyConfig):
    """Settings of the relation-neuron study (defaults for the organism).

    Attributes:
        scoring: how an answer counts as recalled (:mod:`lens.studies.answers`).
        language: selection language (None = the pivot).
        k: neurons per relation (None = :func:`lens.finders.average_precision.default_k`).
        k_multipliers: the cumulativity curve's k values as multiples of ``k``.
        neg_ratio: sampled negatives per positive prompt for average precision.
        selection_fraction: share of subjects whose queries select the neurons; the other
            subjects' queries are evaluated.
        transfer_languages: languages/notations for the transfer test (None = all others).
        n_random_seeds: random same-size neuron sets per relation.
        min_accuracy: a transfer language whose mean baseline accuracy is below this is
            flagged as near zero and not measured (zeroing neurons cannot lower it further).
        batch_size: prompts per forward.
    """

    data_kind: ClassVar[str | None] = "facts"
    language: str | None = None
    scoring: AnswerScoring = "first_token"
    k: Annotated[int | None, Range(1)] = None
    k_multipliers: Annotated[list[float] | None, Range(0, open_low=True), Items(1, unique=True)] = (
        None
    )
    neg_ratio: Annotated[float, Range(0, open_low=True)] = 4.0
    selection_fraction: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.5
    transfer_languages: Annotated[list[str] | None, Items(1, unique=True)] = None
    n_random_seeds: Annotated[int, Range(1, 100)] = 3
    min_accuracy: Annotated[float, Range(0, 1)] = 0.05
    batch_size: Annotated[int, Range(1, 65536)] = 128

    def multipliers(self) -> list[float]:
        return list(self.k_multipliers or [0.25, 0.5, 1.0, 2.0, 4.0, 8.0])


def quick_config() -> Config:
    """A few seconds on the organism."""
    return Config(k_multipliers=[0.5, 1.0], transfer_languages=["ka", "py"], n_random_seeds=1)
