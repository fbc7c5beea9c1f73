"""Next-token logits at each prompt's last real token, under interventions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interventions.base import Intervention
from lens.hooks import apply
from lens.tokens import Batch, PaddingSide, as_batch
from lens.tokens import batch as make_batch


@torch.no_grad()
def last_token_logits(
    model: Any,
    prompts: Any,
    *,
    interventions: Sequence[Intervention] = (),
    batch_size: int = 16,
    padding_side: PaddingSide = "left",
) -> Float[Tensor, "batch d_vocab"]:
    """Next-token logits at each prompt's last real token, under ``interventions``.

    Args:
        model: a TransformerBridge.
        prompts: texts, token-id lists, a ``[batch, pos]`` tensor or a ``lens.tokens.Batch``.
        interventions: installed (with ``lens.apply``) for the whole call.
        batch_size: prompts per forward.
        padding_side: padding for prompts that are not a Batch yet.

    Example:
        >>> import lens, torch
        >>> from lens.readout import last_token_logits
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> out = last_token_logits(model, [[1, 2, 3], [4, 5]])
        >>> torch.allclose(out[1], model(torch.tensor([[4, 5]]))[0, -1], atol=1e-5)
        True
    """
    if isinstance(prompts, (Batch, Tensor)):
        whole = as_batch(model, prompts, padding_side=padding_side)
        chunks = [
            Batch(
                whole.tokens[i : i + batch_size], whole.attention_mask[i : i + batch_size], "left"
            )
            for i in range(0, len(whole), batch_size)
        ]
    else:  # tokenize chunk by chunk: each is padded to its own longest prompt only
        items = [prompts] if isinstance(prompts, str) else list(prompts)
        chunks = [
            make_batch(model, items[i : i + batch_size], padding_side=padding_side)
            for i in range(0, len(items), batch_size)
        ]
    out = []
    with apply(model, *interventions):
        for b in chunks:
            logits = model(b.tokens, attention_mask=b.attention_mask)
            rows = torch.arange(logits.shape[0], device=logits.device)
            out.append(logits[rows, b.last_positions.to(logits.device)])
    return torch.cat(out)
