"""Edge-score graphs (:class:`Graph`) and the circuits cut from them (:class:`Circuit`)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interventions.edge_graph import Layout, make_layout
from lens.circuits.interop import dense_scores, to_transformer_lens


def _components(lay: Layout) -> list[list[int]]:
    """For each reader, the writer indices its component produces (empty for logits)."""
    out: list[list[int]] = []
    group = lay.n_heads // lay.n_kv
    for name in lay.readers:
        kind, layer, head = lay.reader_parts(name)
        base = 1 + layer * (lay.n_heads + 1)
        if kind == "q":
            out.append([base + head])
        elif kind in ("k", "v"):
            out.append([base + h for h in range(head * group, (head + 1) * group)])
        elif kind == "mlp":
            out.append([base + lay.n_heads])
        else:
            out.append([])
    return out


@functools.lru_cache(maxsize=16)
def _structure(n_layers: int, n_heads: int, n_kv: int) -> tuple[Tensor, list[Tensor]]:
    """``produces[r, w]`` (reader ``r``'s component writes ``w``) and the reader indices of
    each stage, in stage order."""
    lay = make_layout(n_layers, n_heads, n_kv)
    n_w, n_r = len(lay.writers), len(lay.readers)
    produces = torch.zeros(n_r, n_w, dtype=torch.bool)
    for r, ws in enumerate(_components(lay)):
        produces[r, ws] = True
    stages: dict[int, list[int]] = {}
    for r in range(n_r):
        stages.setdefault(lay.reader_stage(r), []).append(r)
    return produces, [torch.tensor(stages[s]) for s in sorted(stages)]


def prune(lay: Layout, keep: Bool[Tensor, "writers readers"]) -> Bool[Tensor, "writers readers"]:
    """Drop edges not on a path from ``input`` to ``logits``.

    Readers are visited stage by stage (readers of one stage never feed each other: their
    components write at that stage, and they read only writers below it)."""
    produces, order = _structure(lay.n_layers, lay.n_heads, lay.n_kv)
    n_r, n_w = produces.shape
    reached = torch.zeros(n_w, dtype=torch.bool)
    reached[0] = True
    for rs in order:  # a component is reached if any of its readers gets a reached edge
        hit = (keep[:, rs] & reached[:, None]).any(0)
        reached |= (produces[rs] & hit[:, None]).any(0)
    useful = torch.zeros(n_w, dtype=torch.bool)
    reader_useful = torch.zeros(n_r, dtype=torch.bool)
    for rs in reversed(order):  # a reader is useful if its component feeds a useful reader
        ru = (produces[rs] & useful[None]).any(1) | (rs == n_r - 1)
        reader_useful[rs] = ru
        useful |= (keep[:, rs] & ru[None]).any(1)
    return keep & reached[:, None] & reader_useful[None, :]


@dataclass
class Circuit:
    """A set of edges (``mask[w, r]``) of a model's graph, every one on an input -> logits path."""

    layout: Layout
    mask: Bool[Tensor, "writers readers"]

    @property
    def n_edges(self) -> int:
        return int(self.mask.sum())

    def __repr__(self) -> str:
        return f"Circuit({self.n_edges} edges)"

    @property
    def edges(self) -> list[tuple[str, str]]:
        """``(writer, reader)`` names of the circuit's edges."""
        idx = self.mask.nonzero().tolist()
        return [(self.layout.writers[w], self.layout.readers[r]) for w, r in idx]

    def to_transformer_lens(self, seq_len: int) -> list[tuple[Any, Any]]:
        """The circuit as TransformerLens 4.3 ``(Node, Node)`` edges at every position."""
        ones = torch.ones(self.mask.shape)
        return list(to_transformer_lens(self.layout, self.mask, ones, seq_len))


@dataclass
class Graph:
    """Edge scores ``scores[w, r]`` (0 where ``mask`` says the edge does not exist).

    Example:
        >>> import lens
        >>> from lens.circuits import attribute
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> g = attribute(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, method="eap")
        >>> c = g.top(10)
        >>> c.n_edges <= 10, all(r for _, r in c.edges)
        (True, True)
    """

    layout: Layout
    scores: Float[Tensor, "writers readers"]
    method: str = "eap"
    steps: int = 1
    n_pairs: int = 1
    ig: str | None = None  # EAP-IG's path ("inputs" / "activations"); None for other methods
    per_pair: Float[Tensor, "pairs writers readers"] | None = None  # mean over pairs = scores
    per_position: Float[Tensor, "pos writers readers"] | None = None  # sum over pos = scores

    def __repr__(self) -> str:
        shape = f"{len(self.layout.writers)} writers x {len(self.layout.readers)} readers"
        return (
            f"Graph({self.n_edges} edges of {shape}, method={self.method!r}, "
            f"steps={self.steps}, pairs={self.n_pairs}" + (f", ig={self.ig!r})" if self.ig else ")")
        )

    @property
    def mask(self) -> Bool[Tensor, "writers readers"]:
        return self.layout.mask()

    @property
    def n_edges(self) -> int:
        return int(self.mask.sum())

    def score(self, writer: str, reader: str) -> float:
        """The score of the edge ``writer -> reader`` (KeyError naming valid nodes if unknown)."""
        lay = self.layout
        return float(self.scores[lay.writer_index(writer), lay.reader_index(reader)])

    def ranked(self) -> list[tuple[str, str, float]]:
        """Every existing edge, highest ``|score|`` first."""
        mask = self.mask
        flat = torch.where(mask, self.scores.abs(), torch.full_like(self.scores, -1.0)).flatten()
        order = flat.argsort(descending=True)[: int(mask.sum())]
        n_r = len(self.layout.readers)
        out = []
        for i in order.tolist():
            w, r = divmod(i, n_r)
            out.append((self.layout.writers[w], self.layout.readers[r], float(self.scores[w, r])))
        return out

    def top(self, n_edges: int) -> Circuit:
        """The ``n_edges`` highest-``|score|`` edges, less those off every input -> logits path."""
        if n_edges < 0:
            raise ValueError(f"n_edges must be >= 0, got {n_edges}")
        keep = torch.zeros_like(self.mask)
        flat = torch.where(self.mask, self.scores.abs(), torch.full_like(self.scores, -1.0))
        order = flat.flatten().argsort(descending=True)[: min(n_edges, self.n_edges)]
        keep.view(-1)[order] = True
        return Circuit(self.layout, prune(self.layout, keep & self.mask))

    def threshold(self, t: float) -> Circuit:
        """The edges with ``|score| >= t``, less those off every input -> logits path.

        Example:
            >>> import lens
            >>> from lens.circuits import attribute
            >>> g = attribute(lens.load_model(lens.tiny_config("llama")), [[1, 2, 3]],
            ...               [[1, 4, 3]], answer=5, method="eap")
            >>> g.threshold(0.0).n_edges == g.top(g.n_edges).n_edges
            True
        """
        if not t >= 0:
            raise ValueError(f"the threshold must be a number >= 0, got {t}")
        keep = self.mask & (self.scores.abs() >= t)
        return Circuit(self.layout, prune(self.layout, keep))

    def to_transformer_lens(self, seq_len: int) -> dict[tuple[Any, Any], float]:
        """TransformerLens 4.3 ``(Node, Node) -> score`` at positions ``0..seq_len-1``, each
        position given the position-summed score (no grouped-query models: TL has no
        key/value-head readers).

        Example:
            >>> import lens
            >>> from lens.circuits import attribute
            >>> model = lens.load_model(lens.tiny_config("gpt2"))
            >>> g = attribute(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, method="eap")
            >>> len(g.to_transformer_lens(3)) == 3 * g.n_edges
            True
        """
        return to_transformer_lens(self.layout, self.mask, self.scores, seq_len)

    @classmethod
    def from_transformer_lens(
        cls, edge_scores: dict[tuple[Any, Any], float], layout: Layout, *, method: str = "eap"
    ) -> Graph:
        """A graph from TL's ``attribution_patch(...).edge_scores`` (summed over positions)."""
        return cls(layout, dense_scores(edge_scores, layout), method=method)

    def save(self, folder: str | Path) -> Path:
        """Write ``graph.json`` (nodes, method) and ``graph.safetensors`` (scores)."""
        from safetensors.torch import save_file

        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        lay = self.layout
        meta = {
            "format": "lens-graph",
            "version": 1,
            "method": self.method,
            "steps": self.steps,
            "n_pairs": self.n_pairs,
            "ig": self.ig,
            "n_layers": lay.n_layers,
            "n_heads": lay.n_heads,
            "n_kv": lay.n_kv,
            "parallel": lay.parallel,
            "writers": lay.writers,
            "readers": lay.readers,
        }
        (path / "graph.json").write_text(json.dumps(meta, indent=1))
        tensors = {"scores": self.scores.contiguous()}
        for name in ("per_pair", "per_position"):
            value = getattr(self, name)
            if value is not None:
                tensors[name] = value.contiguous()
        save_file(tensors, str(path / "graph.safetensors"))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Graph:
        """Read a graph written by :meth:`save`."""
        from safetensors.torch import load_file

        path = Path(folder)
        meta: dict[str, Any] = json.loads((path / "graph.json").read_text())
        if meta.get("format") != "lens-graph":
            raise ValueError(f"{path / 'graph.json'} is not a lens graph")
        lay = Layout(
            meta["n_layers"],
            meta["n_heads"],
            meta["n_kv"],
            meta["parallel"],
            list(meta["writers"]),
            list(meta["readers"]),
        )
        t = load_file(str(path / "graph.safetensors"))
        return cls(
            lay, t["scores"], meta["method"], meta["steps"], meta["n_pairs"], meta.get("ig"),
            t.get("per_pair"), t.get("per_position"),
        )  # fmt: skip
