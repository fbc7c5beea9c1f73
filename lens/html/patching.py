"""Patching and causal-tracing maps: one tab per site (or restored kind), prompt tokens on the
position axis, the value under the cursor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lens.html.heatmap import heatmap_view
from lens.html.page import View

__all__ = ["patching_view", "trace_view"]


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu().double() if hasattr(x, "detach") else x, dtype=float)


def patching_view(result: Any, *, title: str = "Activation patching") -> View:
    """Heatmaps of :meth:`lens.patching.PatchingResult.values` (0 = corrupted run, 1 = clean),
    one tab per site; ``z`` (per head) gets one row per (layer, head).

    Example:
        >>> import lens
        >>> from lens.patching import activation_patching
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = activation_patching(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, wrong=6)
        >>> v = patching_view(res)
        >>> v.data["panels"][0]["name"], len(v.data["rows"]) == len(res.layers)
        ('resid_pre', True)
    """
    sites = result.sites
    layers = list(result.layers)
    rows = [str(layer) for layer in layers]
    panels: list[tuple[Any, ...]] = []
    for s in sites:
        values = _np(result.values(s))
        if len(result.dims(s)) == 3:  # [layer, position, head] -> one row per (layer, head)
            heads = values.shape[-1]
            own = [f"L{layer}.h{h}" for layer in layers for h in range(heads)]
            panels.append((s, values.transpose(0, 2, 1).reshape(len(own), -1), own))
        else:
            panels.append((s, values))
    meta = result.meta or {}
    clean = float(_np(result.clean_metric).mean())
    corrupt = float(_np(result.corrupt_metric).mean())
    note = (
        f"{result.method} patching ({result.direction}), metric {meta.get('metric', 'n/a')}: "
        f"0 = the corrupted run ({corrupt:.4g}), 1 = the clean run ({clean:.4g}), mean over "
        f"{int(result.clean_metric.shape[0])} pairs."
    )
    prompts = meta.get("clean_prompts")
    if prompts:
        note += f" Clean prompt 0: {prompts[0]!r}."
    return heatmap_view(
        None,
        rows=rows,
        cols=list(result.position_labels),
        title=title,
        note=note,
        value_label="normalised effect",
        row_title="layer",
        col_title="position",
        scale="diverging",
        flip_rows=True,
        panels=panels,
    )


def trace_view(
    result: Any,
    tokens: Sequence[str],
    *,
    prompt: int = 0,
    title: str = "Causal tracing",
) -> View:
    """Restored answer probability of one prompt of a :class:`lens.patching.TraceResult`, one
    tab per restored kind; ``tokens`` are the prompt's real tokens (subject tokens get a ``*``).

    Example:
        >>> import lens
        >>> from lens.patching import causal_trace
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> tr = causal_trace(model, [[1, 2, 3, 4]], [[1, 2]], answer=5, samples=2,
        ...                   kinds=["resid"])
        >>> trace_view(tr, ["a", "b", "c", "d"]).data["cols"]
        ['a', 'b*', 'c*', 'd']
    """
    mask = _np(result.mask[prompt]).astype(bool)
    subject = _np(result.subject[prompt]).astype(bool)[mask]
    if len(tokens) != int(mask.sum()):
        raise ValueError(f"give the prompt's {int(mask.sum())} real tokens, got {len(tokens)}")
    cols = [f"{t}*" if s else str(t) for t, s in zip(tokens, subject)]
    kinds = list(result.restored)
    n_layers = int(result.restored[kinds[0]].shape[1])
    panels = [(k, _np(result.restored[k][prompt])[:, mask]) for k in kinds]
    clean = float(_np(result.clean_prob[prompt]))
    corrupt = float(_np(result.corrupt_prob[prompt]))
    note = (
        f"p(answer) with each state restored into the noised run (window {result.window} for "
        f"mlp/attn); clean {clean:.4f}, noised {corrupt:.4f}; * marks noised subject tokens."
    )
    return heatmap_view(
        None,
        rows=[str(i) for i in range(n_layers)],
        cols=cols,
        title=title,
        note=note,
        value_label="p(answer) restored",
        row_title="layer",
        col_title="token",
        scale="seq",
        flip_rows=True,
        panels=panels,
    )
