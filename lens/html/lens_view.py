"""Logit / tuned lens heatmap: layers x prompt positions, coloured by the top-1 probability
(or the target's), hover shows the top-k tokens with their probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lens.html.page import View, rounded

__all__ = ["logit_lens_view"]


def logit_lens_view(
    results: Any | Sequence[Any],
    *,
    row: int = 0,
    top_k: int = 5,
    title: str = "",
) -> View:
    """A heatmap of one prompt (``row``) of one or more :class:`lens.LogitLensResult` (e.g.
    the logit lens and the tuned lens of the same prompt: one tab each, a toggle in the page).

    Only the prompt's real positions and the first ``top_k`` tokens per cell are embedded,
    probabilities rounded to 4 decimals.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = lens.logit_lens(model, [[1, 2, 3]], positions="all", top_k=3)
        >>> view = logit_lens_view(res)
        >>> len(view.data["rows"]), len(view.data["cols"]), view.data["topk"]["0"]["k"]
        (3, 3, 3)
    """
    items: list[Any] = list(results) if isinstance(results, (list, tuple)) else [results]
    if not items:
        raise ValueError("give at least one LogitLensResult")
    first: Any = items[0]
    keep = np.nonzero(np.asarray(first.valid[row]))[0]
    cols = [first.token_str(first.input_ids[row, p]) for p in keep]
    rows = first.layer_labels
    vocab: dict[str, str] = {}
    panels, topk = [], {}
    for n, res in enumerate(items):
        if res.layer_labels != rows or not np.array_equal(res.valid[row], first.valid[row]):
            raise ValueError("the results must decode the same layers of the same prompt")
        k = min(top_k, res.top_ids.shape[-1])
        ids = np.asarray(res.top_ids[:, row][:, keep, :k])
        probs = np.asarray(res.top_probs[:, row][:, keep, :k])
        for i in np.unique(ids):
            if int(i) >= 0:
                vocab[str(int(i))] = res.token_str(int(i))
        key = str(n)
        topk[key] = {"k": k, "ids": ids.reshape(-1).tolist(), "probs": rounded(probs.reshape(-1))}
        entropy = {"label": "entropy (nats)", "z": rounded(res.entropy[:, row][:, keep])}
        method = getattr(res, "method", "logit lens")
        panels.append(
            {
                "name": f"{method}: top-1 probability",
                "z": rounded(probs[..., 0]),
                "valueLabel": "p(top-1)",
                "scale": "prob",
                "topk": key,
                "extra": [entropy],
            }
        )
        if res.target_probs is not None and res.target_ids is not None:
            target = res.token_str(int(res.target_ids[row]))
            panels.append(
                {
                    "name": f"{method}: p({target!r})",
                    "z": rounded(res.target_probs[:, row][:, keep]),
                    "valueLabel": f"p({target!r})",
                    "scale": "prob",
                    "topk": key,
                    "extra": [
                        {"label": "rank", "z": np.asarray(res.target_ranks[:, row][:, keep])},
                        entropy,
                    ],
                }
            )
    data = {
        "rows": rows,
        "cols": cols,
        "rowTitle": f"layer ({first.site})",
        "colTitle": "token",
        "flipRows": True,
        "panels": panels,
        "topk": topk,
        "vocab": vocab,
    }
    methods = " / ".join(dict.fromkeys(getattr(r, "method", "logit lens") for r in items))
    note = (
        f"{methods} of prompt {row} at {first.site} (norm {first.norm}); each cell shows the "
        f"top-1 token, hover for the top {min(top_k, first.top_ids.shape[-1])} tokens."
    )
    return View("heatmap", title or methods, data, note)
