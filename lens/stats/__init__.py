"""Streaming statistics: mergeable float64 accumulators, torch.distributed reduction, and
atomic checkpoints. Fed by :func:`lens.collect`.

    acc = lens.stats.ActivationProbability.for_model(model, groups=["en", "fr"])
    lens.collect(model, lens.stats.labelled(texts, langs), accumulators=[acc], batch_size=16)
    p = acc.probability()                  # [group, layer, neuron]
"""

from lens.stats.accumulators import (
    Accumulator,
    ActivationProbability,
    ExampleMeans,
    MomentStats,
    PositionMeans,
)
from lens.stats.checkpoint import (
    CheckpointError,
    load_states,
    load_tensors,
    model_fingerprint,
    read_meta,
    read_tensor_meta,
    save_checkpoint,
    save_tensors,
)
from lens.stats.corpus import labelled
from lens.stats.distributed import all_gather_rows, all_reduce_sum, rank, world_size
from lens.stats.select import SlotSpec, normalize_positions, plan
from lens.stats.sites import layer_sites

__all__ = [
    "Accumulator",
    "CheckpointError",
    "ActivationProbability",
    "ExampleMeans",
    "MomentStats",
    "PositionMeans",
    "all_gather_rows",
    "all_reduce_sum",
    "labelled",
    "layer_sites",
    "load_states",
    "load_tensors",
    "model_fingerprint",
    "SlotSpec",
    "normalize_positions",
    "plan",
    "rank",
    "read_meta",
    "read_tensor_meta",
    "save_checkpoint",
    "save_tensors",
    "world_size",
]
