"""Conversion to and from TransformerLens 4.3's edge attribution (``(Node, Node) -> score``).

TransformerLens keys edges per position and has no key/value-head readers (it refuses grouped
queries), so these conversions apply to models without grouped queries. lens scores are summed
over positions: ``Graph.to_transformer_lens`` gives every position the summed score (a circuit
keeps an edge at every position), ``Graph.from_transformer_lens`` sums TL's positions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from interventions.edge_graph import Layout

_READER_KINDS = {"q": "q_input", "k": "k_input", "v": "v_input"}


def _check_mha(lay: Layout) -> None:
    if lay.n_kv != lay.n_heads:
        raise ValueError(
            f"this model groups {lay.n_heads} query heads over {lay.n_kv} key/value heads; "
            "TransformerLens's edge nodes have no key/value-head readers (it refuses GQA)"
        )


def _tl_nodes(lay: Layout, position: int) -> tuple[list[Any], list[Any]]:
    from transformer_lens.tools.analysis.attribution_patching import Node

    writers = [Node("embed", position)]
    for layer in range(lay.n_layers):
        writers += [Node("attn_head_out", position, layer, h) for h in range(lay.n_heads)]
        writers.append(Node("mlp_out", position, layer))
    readers = []
    for name in lay.readers:
        kind, layer, head = lay.reader_parts(name)
        if kind == "logits":
            readers.append(Node("logits", position, lay.n_layers - 1))
        elif kind == "mlp":
            readers.append(Node("mlp_in", position, layer))
        else:
            readers.append(Node(_READER_KINDS[kind], position, layer, head))  # type: ignore[arg-type]
    return writers, readers


def to_transformer_lens(
    lay: Layout, mask: Tensor, values: Tensor, seq_len: int
) -> dict[tuple[Any, Any], float]:
    """TL ``{(writer Node, reader Node): values[w, r]}`` for every edge of ``mask`` at positions
    ``0..seq_len-1`` (use ``Graph.to_transformer_lens`` / ``Circuit.to_transformer_lens``)."""
    _check_mha(lay)
    pairs = mask.nonzero().tolist()
    out: dict[tuple[Any, Any], float] = {}
    for pos in range(seq_len):
        writers, readers = _tl_nodes(lay, pos)
        for w, r in pairs:
            out[(writers[w], readers[r])] = float(values[w, r])
    return out


def dense_scores(edge_scores: dict[tuple[Any, Any], float], lay: Layout) -> Tensor:
    """TL's per-position edge scores as a ``[writers, readers]`` tensor summed over positions."""
    _check_mha(lay)
    index_w = {n: i for i, n in enumerate(lay.writers)}
    index_r = {n: i for i, n in enumerate(lay.readers)}
    scores = torch.zeros(len(lay.writers), len(lay.readers), dtype=torch.float64)
    for (w, r), score in edge_scores.items():
        scores[index_w[_lens_name(w)], index_r[_lens_name(r)]] += float(score)
    return scores.float()


def _lens_name(node: Any) -> str:
    kind, layer, head = node.kind, node.layer, node.head
    if kind == "embed":
        return "input"
    if kind == "attn_head_out":
        return f"a{layer}.h{head}"
    if kind in ("mlp_out", "mlp_in"):
        return f"m{layer}"
    if kind == "logits":
        return "logits"
    return f"a{layer}.h{head}<{kind[0]}>"
