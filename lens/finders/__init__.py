"""Finders: language-specific neurons (LAPE), relation-specific neurons (average precision),
difference-in-means directions and refusal-direction selection. Each runs on
:func:`lens.collect`, so it is streamed, resumable and shards under torch.distributed."""

from lens.finders.average_precision import (
    APResult,
    average_precision,
    average_precision_neurons,
    default_k,
    rank_neurons,
)
from lens.finders.diff_in_means import DiffInMeans, cosine, diff_in_means
from lens.finders.lape import LapeResult, activation_probabilities, lape, quantile_value
from lens.finders.select_direction import (
    CandidateScore,
    DirectionSelection,
    NoDirectionFound,
    refusal_scores,
    select_direction,
)

__all__ = [
    "APResult",
    "CandidateScore",
    "DiffInMeans",
    "DirectionSelection",
    "LapeResult",
    "NoDirectionFound",
    "activation_probabilities",
    "average_precision",
    "average_precision_neurons",
    "cosine",
    "default_k",
    "diff_in_means",
    "lape",
    "quantile_value",
    "rank_neurons",
    "refusal_scores",
    "select_direction",
]
