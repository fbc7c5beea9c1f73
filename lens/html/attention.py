"""Attention patterns of one prompt: collected with lens probes on ``hook_pattern``, embedded
as float16 (the lower triangle only for causal models)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lens.html.page import View, f16_base64

__all__ = ["attention_patterns", "attention_view"]


def attention_patterns(
    model: Any, prompt: Any, *, layers: Any = "all"
) -> tuple[np.ndarray, list[str], list[int]]:
    """``(patterns [layer, head, query, key], token texts, layers)`` of one prompt.

    Read with :class:`lens.hooks.Probe` on ``blocks.L.attn.hook_pattern`` in one forward.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> pat, toks, layers = attention_patterns(model, [[1, 2, 3, 4]])
        >>> pat.shape, layers
        ((3, 4, 4, 4), [0, 1, 2])
    """
    import torch

    from interventions.sites import resolve_layers
    from lens.hooks import Probe, apply
    from lens.tokens import as_batch

    b = as_batch(model, prompt)
    if len(b) != 1:
        raise ValueError(f"give one prompt, got {len(b)}")
    chosen = resolve_layers(model, layers)
    probes = [Probe(f"blocks.{layer}.attn.hook_pattern", to_cpu=True) for layer in chosen]
    with torch.no_grad(), apply(model, probes=probes):
        model(b.tokens, attention_mask=b.attention_mask)
    real = b.attention_mask[0].bool().cpu()
    pats = torch.stack([p.value[0][:, real][:, :, real] for p in probes]).float().numpy()
    ids = b.tokens[0, real].tolist()
    tok = getattr(model, "tokenizer", None)
    texts = [tok.decode([i]) if tok is not None else f"#{i}" for i in ids]
    return pats, texts, chosen


def attention_view(
    patterns: Any,
    tokens: Sequence[str],
    *,
    layers: Sequence[Any] | None = None,
    causal: bool = True,
    title: str = "Attention patterns",
) -> View:
    """Query x key patterns with layer and head selectors; ``patterns`` is
    ``[layer, head, query, key]`` (numpy or torch).

    Example:
        >>> pat = np.full((1, 2, 3, 3), 1 / 3)
        >>> v = attention_view(pat, ["a", "b", "c"], causal=False)
        >>> v.data["heads"], len(v.data["layers"])
        (2, 1)
    """
    arr = np.asarray(patterns.detach().cpu() if hasattr(patterns, "detach") else patterns)
    if arr.ndim != 4 or arr.shape[2] != arr.shape[3] or arr.shape[2] != len(tokens):
        raise ValueError(
            f"patterns must be [layer, head, query, key] with {len(tokens)} tokens, "
            f"got shape {arr.shape}"
        )
    n = arr.shape[2]
    if causal:
        q, k = np.tril_indices(n)
        flat = arr[:, :, q, k]
    else:
        flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
    data = {
        "tokens": [str(t) for t in tokens],
        "layers": [str(x) for x in (layers if layers is not None else range(arr.shape[0]))],
        "heads": int(arr.shape[1]),
        "causal": causal,
        "data": f16_base64(flat.reshape(-1)),
    }
    note = (
        f"{arr.shape[0]} layers x {arr.shape[1]} heads over {n} tokens; rows are queries, "
        "columns keys; colour ~ sqrt(weight) so small weights stay visible; hover for the "
        "weight (stored as float16)."
    )
    return View("attention", title, data, note)
