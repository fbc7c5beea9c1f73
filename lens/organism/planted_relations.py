"""Planted relation neurons (the relation-neuron study's positive control), part of
:mod:`lens.organism.planted`.

Per relation, ``per_relation`` new MLP neurons in layers ``RELATION_LAYERS`` read the relation
dim RL_r that the fact pathway puts on the pivot language's relation word
(:mod:`lens.organism.planted_facts`): gate ``G (RL_r - 1.2 ONE)`` (ONE is ``c / 2`` on every
token, so the gate opens only where RL_r is near its embedding value ``c``: on the relation
word itself, not where the relation head's uniform leak put a fraction of it) and up ``U RL_r``.
So each is active (> 0) on its relation's word and exactly 0 on every other token: a perfect
classifier of "prompt is relation r" (average precision 1), which the study's average-precision
ranking must put first. ``per_relation`` is the study's default k at the planted MLP width.

They write nothing (their output weights are 0): they are a control for the *selection* step;
deactivating them changes no answer, so the study's deactivation findings test the natural
neurons it also finds. Not planted: neurons shared by two relations (versatility) and an
interference pair (see the report of issue 23: with average precision a neuron shared by two
relations ranks the other relation's prompts as tied negatives, AP ~0.4 for each, below the
natural 17th best, 0.66-0.84, so it cannot enter both top-k sets).
"""

from __future__ import annotations

from typing import Any

import torch

RELATION_LAYERS = (1, 3, 4)  # free MLP slots: the language neurons use 0 and 5, facts 2
GATE, UP = 1500.0, 1500.0


def relation_k(n_layers: int, width: int) -> int:
    """The relation-neuron study's default k at this MLP width
    (:func:`lens.finders.average_precision.default_k`)."""
    from lens.finders.average_precision import PAPER_K, PAPER_NEURONS

    return max(1, round(PAPER_K * n_layers * width / PAPER_NEURONS))


def plant_relation_neurons(
    sd: dict[str, torch.Tensor],
    world: Any,
    rl: list[int],
    one: int,
    *,
    width: int,
    per_relation: int,
) -> dict[str, Any]:
    """Write the neurons (slots from ``width`` on in each of ``RELATION_LAYERS``); returns
    ``truth["relation_neurons"]``."""
    neurons: dict[str, list[list[int]]] = {}
    for i, rel in enumerate(world.relations):
        neurons[rel] = []
        for j in range(per_relation):
            g = i * per_relation + j
            layer = RELATION_LAYERS[g % len(RELATION_LAYERS)]
            n = width + g // len(RELATION_LAYERS)
            p = f"model.layers.{layer}."
            g2 = sd[p + "post_attention_layernorm.weight"]
            sd[p + "mlp.gate_proj.weight"][n, rl[i]] = GATE / g2[rl[i]]
            sd[p + "mlp.gate_proj.weight"][n, one] = -1.2 * GATE / g2[one]
            sd[p + "mlp.up_proj.weight"][n, rl[i]] = UP / g2[rl[i]]
            neurons[rel].append([layer, n])
    return {
        "language": world.pivot,
        "layers": list(RELATION_LAYERS),
        "per_relation": per_relation,
        "neurons": neurons,
        "shared": {},
        "interference": None,
    }
