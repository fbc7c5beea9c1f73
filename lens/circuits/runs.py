"""Plain runs shared by the circuit methods: private hook bundles, row slices of a batch, and
every writer's output on a batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interventions.edge_graph import WriterStore, layout, writer_capture_hooks
from lens.hooks import apply
from lens.tokens import Batch


class _Hooks:
    """Private intervention: hooks given as ``(name, fn)`` pairs."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    def hooks(self, model: Any) -> list[tuple[str, Any]]:
        return self.pairs


def _rows(batch: Batch, start: int, stop: int) -> Batch:
    return Batch(batch.tokens[start:stop], batch.attention_mask[start:stop], batch.padding_side)


def writer_outputs(
    model: Any, batch: Batch, *, interventions: Sequence[Any] = ()
) -> Float[Tensor, "batch pos writers d_model"]:
    """Every writer's output ``[batch, pos, writers, d_model]`` on ``batch`` (no grad), in
    :func:`interventions.edges.layout` order; ``source`` values for ``EdgePatch``.

    Example:
        >>> import lens
        >>> from lens.tokens import as_batch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> tuple(writer_outputs(model, as_batch(model, [[1, 2, 3]])).shape)
        (1, 3, 16, 64)
    """
    lay = layout(model)
    store = WriterStore()
    with torch.no_grad(), apply(model, *interventions, _Hooks(writer_capture_hooks(model, store))):
        model(batch.tokens, attention_mask=batch.attention_mask)
    return store.stacked(lay)
