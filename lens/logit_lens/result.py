"""LogitLensResult: what :func:`lens.logit_lens` returns, with named dims, JSON + npz I/O, plots.

Arrays are numpy, on the CPU. Their dimension names are listed in ``LogitLensResult.DIMS``:
``layer`` (the decoded layers, ``result.layers``), ``batch`` (prompts), ``position`` (the
decoded positions, ``result.positions`` gives their index in the padded row), ``k`` (top-k)
and ``category``. Entries at padded positions (``valid`` False) hold -1 (ids, ranks) or NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lens.array_result import ArrayResult

_ARRAYS = (
    "layers",
    "positions",
    "valid",
    "input_ids",
    "top_ids",
    "top_probs",
    "entropy",
    "target_ids",
    "target_probs",
    "target_ranks",
    "category_mass",
)


@dataclass
class LogitLensResult(ArrayResult):
    """Per-layer decodings of the residual stream (see ``DIMS`` for every array's dims).

    Attributes:
        layers: decoded layer numbers (counted from 0; -1 is the embedding output, the
            residual stream before block 0, decoded with ``include_embed=True``). ``[layer]``
        site: the site read at every layer (:mod:`interventions.sites`), e.g.
            ``"resid_post"`` (the output of block l) or ``"resid_pre"`` (its input).
        norm: ``"recompute"`` (final norm with statistics of each vector) or ``"none"``.
        positions: index of each decoded position in the padded row, -1 if none.
            ``[batch, position]``
        valid: whether that position holds a real token. ``[batch, position]``
        input_ids: the input token at that position (-1 where invalid). ``[batch, position]``
        top_ids, top_probs: the top-k tokens and their probabilities.
            ``[layer, batch, position, k]``
        entropy: entropy of the decoded distribution, in nats. ``[layer, batch, position]``
        target_ids: the target token of each prompt, or None. ``[batch]``
        target_probs, target_ranks: the target's probability and rank (0 = top-1; the number
            of tokens strictly more probable), or None. ``[layer, batch, position]``
        category_names: names of the token categories (order of the last dim of the mass).
        category_mass: probability mass of each category, or None.
            ``[layer, batch, position, category]``
        token_strings: decoded text of every token id that appears in the arrays above.
        prompts: the prompts as given (text), or None for token-id input.
        model: a short description of the model.
        method: ``"logit lens"``, or ``"tuned lens"`` when a translator decoded the layers.
    """

    layers: np.ndarray
    site: str
    norm: str
    positions: np.ndarray
    valid: np.ndarray
    input_ids: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    entropy: np.ndarray
    target_ids: np.ndarray | None = None
    target_probs: np.ndarray | None = None
    target_ranks: np.ndarray | None = None
    category_names: list[str] = field(default_factory=list)
    category_mass: np.ndarray | None = None
    token_strings: dict[int, str] = field(default_factory=dict)
    prompts: list[str] | None = None
    model: str = ""
    method: str = "logit lens"

    ARRAY_NAMES: ClassVar[tuple[str, ...]] = _ARRAYS
    DIMS: ClassVar[dict[str, tuple[str, ...]]] = {
        "layers": ("layer",),
        "positions": ("batch", "position"),
        "valid": ("batch", "position"),
        "input_ids": ("batch", "position"),
        "top_ids": ("layer", "batch", "position", "k"),
        "top_probs": ("layer", "batch", "position", "k"),
        "entropy": ("layer", "batch", "position"),
        "target_ids": ("batch",),
        "target_probs": ("layer", "batch", "position"),
        "target_ranks": ("layer", "batch", "position"),
        "category_mass": ("layer", "batch", "position", "category"),
    }

    def __repr__(self) -> str:
        n_layer, n_batch, n_pos, k = self.top_ids.shape
        return (
            f"LogitLensResult(site={self.site!r}, layers={self.layer_labels}, norm={self.norm!r}, "
            f"batch={n_batch}, positions={n_pos}, top_k={k})"
        )

    @property
    def layer_labels(self) -> list[str]:
        """One label per decoded layer: ``"embed"`` for -1, else the layer number."""
        return ["embed" if int(x) == -1 else str(int(x)) for x in self.layers]

    @property
    def shape(self) -> dict[str, int]:
        """Size of every named dimension."""
        n_layer, n_batch, n_pos, k = self.top_ids.shape
        return {
            "layer": n_layer,
            "batch": n_batch,
            "position": n_pos,
            "k": k,
            "category": len(self.category_names),
        }

    def token_str(self, token_id: int) -> str:
        """Decoded text of a token id (``#id`` for -1 or an unknown id)."""
        return self.token_strings.get(int(token_id), f"#{int(token_id)}")

    # ------------------------------------------------------------------ I/O

    def _meta(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "norm": self.norm,
            "category_names": list(self.category_names),
            "token_strings": {str(k): v for k, v in self.token_strings.items()},
            "prompts": self.prompts,
            "model": self.model,
            "method": self.method,
            "dims": {k: list(v) for k, v in self.DIMS.items()},
            "shape": self.shape,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of everything: arrays as nested lists, NaN (padding) as None."""
        out = self._meta()
        for name in _ARRAYS:
            out[name] = _json_list(getattr(self, name))
        return out

    # ------------------------------------------------------------------ plots

    def plot_grid(self, path: str | Path, row: int = 0, *, max_chars: int = 8) -> Path:
        """Layers x positions grid of the top-1 token, coloured by its probability (PNG)."""
        from lens.plots.logit_lens import plot_grid

        return plot_grid(self, path, row=row, max_chars=max_chars)

    def plot_mass(self, path: str | Path, row: int | None = None, position: int = -1) -> Path:
        """Per-layer curves of the target probability and category masses (PNG).

        ``row=None`` plots the mean over prompts (with a min-max band); ``position`` indexes
        the ``position`` dim (default: the last decoded position).
        """
        from lens.plots.logit_lens import plot_mass

        return plot_mass(self, path, row=row, position=position)


def _json_list(value: np.ndarray | None) -> list | None:
    if value is None:
        return None
    if value.dtype.kind == "f" and np.isnan(value).any():
        out = value.astype(object)
        out[np.isnan(value)] = None
        return out.tolist()
    return value.tolist()
