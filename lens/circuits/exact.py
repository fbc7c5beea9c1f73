"""Exact edge scores: every edge patched alone to its clean value in the corrupted run,
``m(patched) - m(corrupted)``, many edges per forward (one row per (edge, pair)) through
:class:`interventions.EdgePatch`. The ground truth EAP and EAP-IG approximate; one forward row
per edge and pair, so for small graphs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from interventions.edge_graph import Layout
from interventions.edges import EdgePatch
from lens.circuits.metrics import metric_rows
from lens.circuits.runs import _rows, writer_outputs
from lens.hooks import apply
from lens.patching.pairs import check_metric_output, repeat


def exact_scores(
    model: Any,
    lay: Layout,
    pairs: Any,
    *,
    batch_size: int,
    interventions: Sequence[Any],
    keep: Sequence[str],
    rows_per_forward: int = 64,
    starts: Sequence[int] | None = None,
) -> dict[str, Tensor]:
    """``{"": [W, R] summed over pairs, "pair": [pairs, W, R]}`` (``"pair"`` when in
    ``keep``); ``rows_per_forward`` bounds the patched rows of one forward; ``starts``: the
    chunks (first pair of each) to score (default: all; other pairs' rows stay 0)."""
    if "position" in keep:
        raise ValueError(
            "per_position is not available for method='exact' (it patches whole edges); use "
            "method='eap' or 'eap-ig'"
        )
    exists = lay.mask()
    edges = exists.nonzero()
    n = pairs.n_pairs
    per_pair = torch.zeros(n, *exists.shape, dtype=torch.float64)
    for start in range(0, n, batch_size) if starts is None else starts:
        stop = min(n, start + batch_size)
        c = stop - start
        clean, corrupt = _rows(pairs.clean, start, stop), _rows(pairs.corrupt, start, stop)
        metric = metric_rows(pairs.metric, start, stop)
        values = writer_outputs(model, clean, interventions=interventions)
        with torch.no_grad(), apply(model, *interventions):
            out = model(corrupt.tokens, attention_mask=corrupt.attention_mask)
        base = check_metric_output(metric(out, corrupt), c).double().cpu()
        k = max(1, rows_per_forward // c)
        for e0 in range(0, len(edges), k):
            chunk = edges[e0 : e0 + k]
            masks = torch.zeros(len(chunk), *exists.shape, dtype=torch.bool)
            masks[torch.arange(len(chunk)), chunk[:, 0], chunk[:, 1]] = True
            run = repeat(corrupt, len(chunk))
            patch = EdgePatch(
                source="corrupt",
                values=values,  # read copy-major by EdgePatch
                mask=masks,  # one mask per block of c rows
            )
            with torch.no_grad(), apply(model, *interventions, patch):
                out = model(run.tokens, attention_mask=run.attention_mask)
            value = check_metric_output(metric(out, run), len(run)).double().cpu()
            if not bool(torch.isfinite(value).all()):
                raise ValueError("the metric is NaN or infinite under edge patching")
            diff = value.view(len(chunk), c) - base[None]
            per_pair[start:stop, chunk[:, 0], chunk[:, 1]] = diff.T
    out_parts = {"": per_pair.sum(0)}
    if "pair" in keep:
        out_parts["pair"] = per_pair
    return out_parts
