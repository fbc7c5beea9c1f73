"""Neuron sets shared by the neuron studies: random baselines of the same per-layer size."""

from __future__ import annotations

import torch


def random_like(
    neurons: dict[int, list[int]], width: int, generator: torch.Generator
) -> dict[int, list[int]]:
    """Random neurons with the same count in every layer as ``neurons``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> {k: len(v) for k, v in random_like({0: [1, 2], 3: [7]}, 16, g).items()}
        {0: 2, 3: 1}
    """
    return {
        layer: sorted(torch.randperm(width, generator=generator)[: len(idx)].tolist())
        for layer, idx in neurons.items()
    }
