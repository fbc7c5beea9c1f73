"""Feature cards for dictionary features (SAEs, transcoders, any feature basis).

Input, one dict per feature (plain data, so any dictionary code can fill it)::

    {
      "id": 12,                        # int or str, shown and searchable
      "title": "feature 12: dates",    # optional
      "contexts": [                    # top-activating contexts, best first
        {"tokens": ["The", " 3rd", ...], "acts": [0.0, 4.2, ...], "label": "doc 7"},
      ],
      "histogram": {"edges": [e0, ..., en], "counts": [c1, ..., cn]},  # optional
      "logits": {"positive": [[" May", 0.81], ...], "negative": [[" the", -0.4], ...]},  # optional
      "stats": {"density": 0.0012, "max act": 7.3},  # optional, name -> number or text
    }

``tokens`` and ``acts`` have one entry per token; a context's ``label`` is optional.
Activations are rounded to 4 decimals and at most ``max_contexts`` contexts of ``max_tokens``
tokens (centred on the peak) are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lens.html.page import View, rounded

__all__ = ["feature_cards_view"]


def _window(tokens: list[str], acts: list[float], max_tokens: int) -> tuple[list, list]:
    if len(tokens) <= max_tokens:
        return tokens, acts
    peak = int(np.nanargmax(np.abs(np.asarray(acts, dtype=float))))
    start = min(max(0, peak - max_tokens // 2), len(tokens) - max_tokens)
    return tokens[start : start + max_tokens], acts[start : start + max_tokens]


def _card(raw: dict[str, Any], max_contexts: int, max_tokens: int) -> dict[str, Any]:
    if "id" not in raw or "contexts" not in raw:
        raise ValueError(f"a feature card needs 'id' and 'contexts'; got keys {sorted(raw)}")
    contexts = []
    for ctx in list(raw["contexts"])[:max_contexts]:
        tokens, acts = [str(t) for t in ctx["tokens"]], [float(a) for a in ctx["acts"]]
        if len(tokens) != len(acts):
            raise ValueError(
                f"feature {raw['id']}: a context has {len(tokens)} tokens and {len(acts)} acts"
            )
        tokens, acts = _window(tokens, acts, max_tokens)
        item: dict[str, Any] = {"tokens": tokens, "acts": rounded(acts)}
        if ctx.get("label") is not None:
            item["label"] = str(ctx["label"])
        contexts.append(item)
    card: dict[str, Any] = {"id": raw["id"], "title": raw.get("title"), "contexts": contexts}
    hist = raw.get("histogram")
    if hist is not None:
        edges, counts = list(hist["edges"]), list(hist["counts"])
        if len(edges) != len(counts) + 1:
            raise ValueError(f"feature {raw['id']}: histogram needs len(edges) == len(counts)+1")
        card["histogram"] = {"edges": rounded(edges), "counts": [int(c) for c in counts]}
    logits = raw.get("logits")
    if logits is not None:
        card["logits"] = {
            side: [[str(t), round(float(v), 4)] for t, v in logits.get(side, [])]
            for side in ("positive", "negative")
        }
    if raw.get("stats"):
        card["stats"] = dict(raw["stats"])
    return card


def feature_cards_view(
    cards: Sequence[dict[str, Any]],
    *,
    max_contexts: int = 12,
    max_tokens: int = 48,
    title: str = "Features",
) -> View:
    """Cards for features given in the shape above: contexts with each token shaded by its
    activation (hover for the value), a histogram, top promoted/suppressed tokens.

    Example:
        >>> card = {"id": 3, "contexts": [{"tokens": ["a", "<b>"], "acts": [0.0, 2.5]}],
        ...         "histogram": {"edges": [0, 1, 2], "counts": [5, 1]},
        ...         "logits": {"positive": [["x", 0.5]], "negative": []}}
        >>> feature_cards_view([card]).data["cards"][0]["contexts"][0]["acts"]
        [0.0, 2.5]
    """
    data = {"cards": [_card(dict(c), max_contexts, max_tokens) for c in cards]}
    note = "Tokens are shaded by activation (orange positive, blue negative); hover for values."
    return View("cards", title, data, note)
