"""Settings of the fact_consistency study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from lens.studies.answers import AnswerScoring
from lens.studies.base import StudyConfig
from lens.studies.config_types import Items, Layer, Range


@dataclass
class Config(StudyConfig):
    """What to measure.

    Attributes:
        scoring: how an answer counts as recalled (:mod:`lens.studies.answers`).
        scripts: languages/notations of the data (None: all; the pivot is always included).
        max_facts: facts evaluated (None: all; else sampled with ``seed``).
        checkpoints: also measure the saved training checkpoints.
        max_checkpoints: at most this many checkpoints, evenly spread, first and last kept
            (None: all).
        shortcut_layers: source layers of the linear shortcut (None: every layer before the
            last; [] to skip the shortcut).
        shortcut_method: ``"lstsq"`` (ridge regression) or ``"jacobian"`` (mean Jacobian).
        shortcut_ridge: ridge penalty for ``"lstsq"`` (relative to the mean Gram eigenvalue).
        fit_fraction: share of the facts whose queries (in every language) fit the shortcut;
            the rest evaluate it (split with ``seed``).
        min_recall: a language whose baseline recall (full model) is below this is flagged
            as near zero and gets no CLC (it would compare near-empty sets).
        batch_size: prompts per forward.
        organism_folder: a trained organism folder (None: the shipped organism).
    """

    data_kind: ClassVar[str | None] = "facts"
    scripts: Annotated[list[str] | None, Items(1, unique=True)] = None
    scoring: AnswerScoring = "first_token"
    max_facts: Annotated[int | None, Range(1)] = None
    checkpoints: bool = True
    max_checkpoints: Annotated[int | None, Range(1)] = None
    shortcut_layers: Annotated[list[int] | None, Layer(spare_last=True), Items(unique=True)] = None
    shortcut_method: Literal["lstsq", "jacobian"] = "lstsq"
    shortcut_ridge: Annotated[float, Range(0)] = 1e-3
    fit_fraction: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.5
    min_recall: Annotated[float, Range(0, 1)] = 0.05
    batch_size: Annotated[int, Range(1, 65536)] = 256
    organism_folder: str | None = None


def quick_config() -> Config:
    """Three scripts, 128 facts, two checkpoints, two shortcut layers (seconds)."""
    return Config(
        scripts=["en", "ka", "py"], max_facts=128, max_checkpoints=2, shortcut_layers=[1, 3]
    )
