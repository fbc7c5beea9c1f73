"""Conversion to and from TransformerLens 4.3's edge attribution (``(Node, Node) -> score``).

TransformerLens keys edges per position and has no key/value-head readers (it refuses grouped
queries), so these conversions apply to models without grouped queries. lens scores are summed
over positions: :func:`to_transformer_lens` gives every position the summed score (a circuit
keeps an edge at every position), :func:`from_transformer_lens` sums TL's positions.
"""

from __future__ import annotations

from typing import Any

import torch

from interventions.edge_graph import Layout
from lens.circuits.graph import Circuit, Graph

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


def to_transformer_lens(item: Graph | Circuit, seq_len: int) -> dict[tuple[Any, Any], float]:
    """TL ``{(writer Node, reader Node): score}`` at positions ``0..seq_len-1`` (a circuit's
    edges score 1.0); ``list(d)`` is a circuit for TL's ``faithfulness``.

    Example:
        >>> import lens
        >>> from lens.circuits import attribute
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> g = attribute(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, method="eap")
        >>> len(to_transformer_lens(g, 3)) == 3 * g.n_edges
        True
    """
    lay = item.layout
    _check_mha(lay)
    mask = item.mask
    values = item.scores if isinstance(item, Graph) else torch.ones(mask.shape)
    pairs = mask.nonzero().tolist()
    out: dict[tuple[Any, Any], float] = {}
    for pos in range(seq_len):
        writers, readers = _tl_nodes(lay, pos)
        for w, r in pairs:
            out[(writers[w], readers[r])] = float(values[w, r])
    return out


def from_transformer_lens(
    edge_scores: dict[tuple[Any, Any], float], lay: Layout, *, method: str = "eap"
) -> Graph:
    """A lens :class:`Graph` from TL's per-position edge scores (summed over positions)."""
    _check_mha(lay)
    index_w = {n: i for i, n in enumerate(lay.writers)}
    index_r = {n: i for i, n in enumerate(lay.readers)}
    scores = torch.zeros(len(lay.writers), len(lay.readers), dtype=torch.float64)
    for (w, r), score in edge_scores.items():
        scores[index_w[_lens_name(w)], index_r[_lens_name(r)]] += float(score)
    return Graph(lay, scores.float(), method=method)


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
