"""Prefix reuse in exact patching: a patched copy equals the unpatched target before its
first patched column, so its keys and values there are the target run's. The target runs
once with a KV cache; each forward then starts at the first patched column of its copies
(copies sorted by that column), reading the cached keys/values for the columns before it.

Used when it is exact: a model whose KV cache is correct (``lens.generate.cache_problem``),
plain per-layer caches (no sliding-window or state layers), no extra interventions (their
positions, e.g. ``"last"``, could mean other columns in a shorter forward) and a metric that
reads only the last token (the forward returns logits from the first patched column on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from lens.generate.cache import cache_problem, cache_routing, forward_with_cache, prefix_cache
from lens.tokens import Batch


class TargetCache:
    """The per-layer keys/values of the whole unpatched target run, ``[pairs, heads, pos, d]``."""

    def __init__(self, layers: list[tuple[Tensor, Tensor]]) -> None:
        self.layers = layers

    @classmethod
    def build(
        cls, model: Any, target: Batch, metric: Any, interventions: Sequence[Any]
    ) -> TargetCache | None:
        """The target's cache, or None when reuse would not be exact (see the module doc)."""
        if interventions or not getattr(metric, "last_token_only", False):
            return None
        if cache_problem(model) is not None:
            return None
        cache = prefix_cache(model, target.tokens, target.attention_mask)
        from transformers.cache_utils import DynamicLayer  # noqa: PLC0415  (slow import)

        layers = getattr(cache, "layers", None)
        if not layers or any(type(layer) is not DynamicLayer for layer in layers):
            return None
        return cls([(layer.keys, layer.values) for layer in layers])

    def for_copies(self, start: int, copies: int, rows_per_layer: list[int] | None) -> Any:
        """A cache of the columns before ``start`` for a copy-major batch of ``copies`` copies
        (or, with ``rows_per_layer``, one pair's cache expanded to each layer's batch)."""
        from transformers import DynamicCache  # noqa: PLC0415

        data = []
        for layer, (k, v) in enumerate(self.layers):
            k, v = k[:, :, :start], v[:, :, :start]
            if rows_per_layer is None:
                k, v = k.repeat(copies, 1, 1, 1), v.repeat(copies, 1, 1, 1)
            else:
                rows = rows_per_layer[layer]
                k, v = k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)
            data.append((k, v))
        return DynamicCache(data)


def first_columns(cells: list[list[tuple[str, int, int, int]]], slots: Tensor) -> list[int]:
    """The first column any pair of each copy patches (the copy's reusable prefix length)."""
    first_slot = slots.min(dim=1).values.tolist()
    return [min(first_slot[slot] for _, _, slot, _ in group) for group in cells]


def rows_per_layer(starts: list[int], n_layers: int) -> list[int]:
    """Batch size at each layer's attention when copies join at ``starts`` (``GrowCopies``:
    one target row until the last start layer, plus every copy that has joined)."""
    last = max(starts)
    return [
        sum(1 for s in starts if s <= layer) + (1 if layer < last else 0)
        for layer in range(n_layers)
    ]


def forward_from(model: Any, tokens: Tensor, mask: Tensor | None, cache: Any, start: int) -> Tensor:
    """Logits of a forward over the columns from ``start`` on, the earlier ones read from
    ``cache`` (``mask`` spans all columns; None: an unpadded batch)."""
    with cache_routing(model):
        logits, _ = forward_with_cache(model, tokens[:, start:], mask, cache)
    return logits
