"""A layered plot of a circuit: input at the bottom, each layer's heads then its MLP, logits on
top; edges coloured by sign (blue positive, red negative), width by ``|score|``, line style by
what the reader reads (query solid, key dashed, value dotted)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lens.plots import new_figure, save_figure

_QKV = re.compile(r"^a(\d+)\.(h|kv)(\d+)<([qkv])>$")
STYLE = {"q": "-", "k": "--", "v": ":", "": "-"}


def node_of(name: str, *, reader: bool) -> tuple[str, int, float, str]:
    """``(node, row, x, kind)`` of a writer or reader name: the node drawn for it, its row
    (0 input, ``2l+1`` layer ``l``'s attention, ``2l+2`` its MLP, top: logits), its head index
    (-1 for the others; a key/value head ``kv{j}`` is placed by :func:`plot_circuit`) and the
    reader's kind (``q``/``k``/``v``, else ``""``)."""
    if name == "input":
        return name, 0, -1, ""
    if name == "logits":
        return name, 10**6, -1, ""
    if name.startswith("m"):
        return name, 2 * int(name[1:]) + 2, -1, ""
    m = _QKV.match(name) if reader else None
    if m:
        layer, tag, idx, kind = int(m[1]), m[2], int(m[3]), m[4]
        return f"a{layer}.{tag}{idx}", 2 * layer + 1, idx + (1000 if tag == "kv" else 0), kind
    layer_s, head = name[1:].split(".h")
    return name, 2 * int(layer_s) + 1, int(head), ""


def plot_circuit(
    edges: Sequence[Sequence[Any]],
    path: str | Path,
    *,
    n_heads: int | None = None,
    n_kv: int | None = None,
    title: str = "",
) -> Path:
    """Draw ``edges`` (``(writer, reader, score)``) as a layered graph PNG at ``path``: heads
    across by index (key/value heads of grouped-query models between the query heads they
    serve), MLPs, input and logits in the middle. ``n_heads``/``n_kv``: the model's (default:
    the largest indices seen).

    Example:
        >>> import tempfile, pathlib
        >>> edges = [("input", "a0.h1<q>", 0.5), ("a0.h1", "logits", -1.0)]
        >>> plot_circuit(edges, pathlib.Path(tempfile.mkdtemp()) / "c.png").is_file()
        True
    """
    nodes: dict[str, tuple[int, float]] = {}
    drawn = []
    for w, r, s in edges:
        wn, wrow, wx, _ = node_of(str(w), reader=False)
        rn, rrow, rx, kind = node_of(str(r), reader=True)
        nodes[wn], nodes[rn] = (wrow, wx), (rrow, rx)
        drawn.append((wn, rn, float(s), kind))
    heads = [x for _, x in nodes.values() if 0 <= x < 1000]
    kvs = [x - 1000 for _, x in nodes.values() if x >= 1000]
    n_heads = n_heads or int(max([*heads, *kvs, 0]) + 1)
    n_kv = n_kv or int(max(kvs, default=0) + 1)
    group = n_heads / n_kv
    centre = (n_heads - 1) / 2
    rows = sorted({row for row, _ in nodes.values()})
    y = {row: i for i, row in enumerate(rows)}
    pos: dict[str, tuple[float, float]] = {}
    for n, (row, x) in nodes.items():
        if x >= 1000:
            x = (x - 1000) * group + (group - 1) / 2 + 0.35
        pos[n] = (x - centre if x >= 0 else 0.0, float(y[row]))
    width = n_heads + 1
    fig = new_figure(min(24.0, max(6.0, 0.9 * width + 2)), max(3.0, 0.6 * len(rows) + 1.5))
    ax = fig.subplots()
    top = max([abs(e[2]) for e in drawn] or [1.0]) or 1.0
    for wn, rn, s, kind in sorted(drawn, key=lambda e: abs(e[2])):
        (x0, y0), (x1, y1) = pos[wn], pos[rn]
        bend = f"arc3,rad={0.15 if x1 >= x0 else -0.15}"
        ax.annotate(
            "", xy=(x1, y1 - 0.12), xytext=(x0, y0 + 0.12),
            arrowprops=dict(arrowstyle="-|>", color="tab:blue" if s > 0 else "tab:red",
                            lw=0.4 + 4 * abs(s) / top, ls=STYLE[kind], alpha=0.75,
                            shrinkA=0, shrinkB=0, connectionstyle=bend),
        )  # fmt: skip
    for n, (x, yy) in pos.items():
        ax.text(x, yy, n, ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="0.4", lw=0.6))  # fmt: skip
    ax.set_xlim(-width / 2 - 0.5, width / 2 + 0.5)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xticks([])
    labels = ["input" if r == 0 else "logits" if r == 10**6 else
              f"L{(r - 1) // 2} {'attn' if r % 2 else 'mlp'}" for r in rows]  # fmt: skip
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(title or f"circuit: {len(drawn)} edges", fontsize=9)
    ax.text(
        1.0, -0.02, "blue +, red -; width |score|; reader q solid, k dashed, v dotted",
        transform=ax.transAxes, ha="right", va="top", fontsize=6, color="0.3",
    )  # fmt: skip
    return save_figure(fig, path)
