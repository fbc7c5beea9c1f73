"""PatchscopeResult: per (source layer, target layer) pair, the next-token top-k of the patched
target run (and its generated continuation), with JSON + npz I/O and a plot, like
:class:`lens.LogitLensResult`. Arrays are numpy, on the CPU; ``DIMS`` names their dims."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lens.array_result import ArrayResult

_ARRAYS = ("source_layers", "target_layers", "top_ids", "top_probs", "entropy", "generated_ids")


@dataclass
class PatchscopeResult(ArrayResult):
    """What :func:`lens.patchscope.patchscope` read.

    Attributes:
        source_layers, target_layers: the layer pair of each row. ``[pair]``
        top_ids, top_probs: top-k next tokens of the patched target run. ``[pair, k]``
        entropy: entropy of that distribution, in nats. ``[pair]``
        generated_ids: tokens generated from each patched run, or None. ``[pair, new]``
        texts: those continuations as text, or None.
        site: the site read in the source and written in the target (e.g. ``"resid_post"``).
        source_prompt, source_position: the source prompt and the column read in it.
        source_token: the source token at that column.
        target_prompt, target_position: the target prompt and the column written in it.
        target_name: the preset (``"identity"``, ``"future"``, ``"attribute"``, ``"custom"``).
        token_strings: decoded text of every token id in the arrays.
        model: a short description of the model.
    """

    source_layers: np.ndarray
    target_layers: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    entropy: np.ndarray
    site: str
    source_prompt: str | list[int]
    source_position: int
    source_token: int
    target_prompt: str | list[int]
    target_position: int
    target_name: str = "custom"
    generated_ids: np.ndarray | None = None
    texts: list[str] | None = None
    token_strings: dict[int, str] = field(default_factory=dict)
    model: str = ""

    ARRAY_NAMES: ClassVar[tuple[str, ...]] = _ARRAYS
    DIMS: ClassVar[dict[str, tuple[str, ...]]] = {
        "source_layers": ("pair",),
        "target_layers": ("pair",),
        "top_ids": ("pair", "k"),
        "top_probs": ("pair", "k"),
        "entropy": ("pair",),
        "generated_ids": ("pair", "new"),
    }

    def __repr__(self) -> str:
        return (
            f"PatchscopeResult(site={self.site!r}, target={self.target_name!r}, "
            f"pairs={len(self.source_layers)}, source_position={self.source_position}, "
            f"target_position={self.target_position}, top_k={self.top_ids.shape[1]})"
        )

    def token_str(self, token_id: int) -> str:
        """Decoded text of a token id (``#id`` for an unknown one)."""
        return self.token_strings.get(int(token_id), f"#{int(token_id)}")

    @property
    def top1(self) -> list[str]:
        """The most likely next token of each pair, as text."""
        return [self.token_str(t) for t in self.top_ids[:, 0]]

    def grid(self, name: str = "top_probs") -> tuple[list[int], list[int], np.ndarray]:
        """``(source layers, target layers, array[source, target, ...])`` of a per-pair
        array (NaN / -1 where a pair was not run)."""
        src = sorted({int(x) for x in self.source_layers})
        tgt = sorted({int(x) for x in self.target_layers})
        values = getattr(self, name)
        if name == "top_probs":
            values = values[:, 0]
        elif name == "top_ids":
            values = values[:, 0]
        fill = -1 if values.dtype.kind in "iu" else np.nan
        out = np.full((len(src), len(tgt), *values.shape[1:]), fill, dtype=values.dtype)
        for row, (s, t) in enumerate(zip(self.source_layers, self.target_layers)):
            out[src.index(int(s)), tgt.index(int(t))] = values[row]
        return src, tgt, out

    # ------------------------------------------------------------------ I/O

    def _meta(self) -> dict[str, Any]:
        names = {f.name for f in fields(self)} - set(_ARRAYS)
        meta = {n: getattr(self, n) for n in sorted(names)}
        meta["token_strings"] = {str(k): v for k, v in self.token_strings.items()}
        meta["dims"] = {k: list(v) for k, v in self.DIMS.items()}
        return meta

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of everything (arrays as nested lists)."""
        out = self._meta()
        for name in _ARRAYS:
            value = getattr(self, name)
            out[name] = None if value is None else value.tolist()
        return out

    def plot(self, path: str | Path) -> Path:
        """Source layer x target layer grid of the top-1 token, coloured by its probability
        (one row per source layer when each was written into its own layer only) (PNG)."""
        from lens.patchscope.plot import plot_pairs

        return plot_pairs(self, path)
