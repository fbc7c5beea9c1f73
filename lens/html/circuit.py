"""Circuit graph: layered nodes (input, heads and MLP per layer, logits), edges coloured by the
sign of their score and sized by its magnitude, a slider over precomputed circuit sizes with
the faithfulness read-out (values from :func:`lens.circuits.faithfulness_curve`)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from lens.html.page import View

__all__ = ["circuit_view"]

_HEAD = re.compile(r"^a(\d+)\.(h|kv)(\d+)")
_MLP = re.compile(r"^m(\d+)$")


def _node(name: str, n_layers: int, n_heads: int, middle: float) -> tuple[str, int, float]:
    """(node id, column, row) of a writer or reader name (input, MLPs and logits sit on the
    middle row of the heads)."""
    if name == "input":
        return "input", 0, middle
    if name == "logits":
        return "logits", 2 * n_layers + 1, middle
    m = _MLP.match(name)
    if m:
        return name, 2 + 2 * int(m.group(1)), middle
    h = _HEAD.match(name)
    if h is None:
        raise ValueError(f"unknown graph node {name!r}")
    layer, kind, idx = int(h.group(1)), h.group(2), int(h.group(3))
    row = idx if kind == "h" else n_heads + idx
    return f"a{layer}.{kind}{idx}", 1 + 2 * layer, row


def _log_sizes(total: int) -> list[int]:
    grid = np.logspace(0, np.log10(max(total, 1)), 16)
    return sorted({0, total, *(int(round(v)) for v in grid)})


def circuit_view(
    graph: Any,
    *,
    curve: Any = None,
    max_edges: int = 1000,
    title: str = "Circuit",
) -> View:
    """The top edges of a :class:`lens.circuits.Graph` with a size slider.

    The slider steps through ``curve.sizes`` (a :class:`lens.circuits.FaithfulnessCurve`,
    whose faithfulness is shown for each) or, without a curve, a log-spaced grid; sizes above
    ``max_edges`` are left out. Step ``k`` draws ``graph.top(sizes[k])`` (top edges by
    ``|score|``, pruned to input -> logits paths); only the largest step's edges are embedded.

    Example:
        >>> import lens
        >>> from lens.circuits import attribute
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> g = attribute(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, method="eap")
        >>> v = circuit_view(g, max_edges=20)
        >>> v.data["steps"][-1]["n_edges"] == g.top(20).n_edges == len(v.data["edges"])
        True
    """
    lay = graph.layout
    if curve is not None:
        sizes = [int(s) for s in curve.sizes if s <= max_edges]
        faith = {int(s): float(f) for s, f in zip(curve.sizes, curve.faithfulness)}
    else:
        top = min(max_edges, graph.n_edges)
        sizes = sorted({*(s for s in _log_sizes(graph.n_edges) if s <= top), top})
        faith = {}
    if not sizes:
        sizes = [0]
    masks = [graph.top(s).mask for s in sizes]
    first = torch.full(masks[-1].shape, len(sizes), dtype=torch.long)
    for k in reversed(range(len(sizes))):
        first[masks[k]] = k
    scores = graph.scores.detach().double().cpu()
    w_idx, r_idx = masks[-1].nonzero(as_tuple=True)
    order = scores[w_idx, r_idx].abs().argsort(descending=True)
    nodes: dict[str, int] = {}
    node_list: list[dict[str, Any]] = []

    rows = lay.n_heads + (lay.n_kv if lay.kv_tag == "kv" else 0)
    middle = (rows - 1) / 2

    def node(name: str) -> int:
        key, col, row = _node(name, lay.n_layers, lay.n_heads, middle)
        if key not in nodes:
            nodes[key] = len(node_list)
            node_list.append({"label": key, "col": col, "row": row})
        return nodes[key]

    edges = []
    for i in order.tolist():
        w, r = int(w_idx[i]), int(r_idx[i])
        src, dst = node(lay.writers[w]), node(lay.readers[r])
        edges.append([src, dst, round(float(scores[w, r]), 6), int(first[w, r]), lay.readers[r]])
    steps: list[dict[str, Any]] = [
        {"size": s, "n_edges": int(m.sum()), "faithfulness": faith.get(s)}
        for s, m in zip(sizes, masks)
    ]
    start = max((k for k, st in enumerate(steps) if st["n_edges"] <= 200), default=len(steps) - 1)
    col_labels = ["input"] + [""] * (2 * lay.n_layers) + ["logits"]
    step = max(1, lay.n_layers // 12)
    for layer in range(0, lay.n_layers, step):
        col_labels[1 + 2 * layer] = f"L{layer}"
    data = {
        "nodes": node_list,
        "ncols": 2 * lay.n_layers + 2,
        "colLabels": col_labels,
        "edges": edges,
        "steps": steps,
        "start": start,
        "cpr": None if curve is None else curve.cpr,
        "cmd": None if curve is None else curve.cmd,
    }
    note = (
        f"{graph.method} scores over {graph.n_pairs} pairs; {graph.n_edges} edges in the full "
        f"graph, the top {masks[-1].sum()} embedded. Blue: positive score, red: negative; "
        "width: |score|. Columns: input, then each layer's heads and MLP, then logits."
    )
    return View("circuit", title, data, note)
