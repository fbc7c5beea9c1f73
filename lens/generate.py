"""Greedy generation that is correct on TransformerLens 4.3.

TL 4.3's ``generate()`` with its default KV cache produces wrong text on Llama-architecture
models (transformers 5 hands the cache over as ``cache=``, which TL does not read). lens
generates without a KV cache: each step re-runs the padded prefix with its attention mask.
That costs O(n^2) compute in the generated length, which is fine for the short answers that
studies score (refusal phrases, fact objects).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from lens.hooks import apply
from lens.tokens import Batch, as_batch


@torch.no_grad()
def greedy_tokens(
    model: Any,
    prompts: Sequence[str] | Sequence[Sequence[int]] | Batch,
    *,
    max_new_tokens: int = 20,
    interventions: Sequence[Any] = (),
    stop_at_eos: bool = True,
) -> Int[Tensor, "batch new"]:
    """Greedy continuation ids for a batch (left padded). Rows that hit EOS keep
    emitting EOS afterwards. Runs under ``interventions`` when given.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.models.tiny_config("llama"))
        >>> lens.generate.greedy_tokens(model, [[1, 2, 3], [4]], max_new_tokens=2).shape
        torch.Size([2, 2])
    """
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    b = as_batch(model, prompts, padding_side="left")
    if b.padding_side != "left":
        raise ValueError("generation needs a left-padded batch")
    tokens, mask = b.tokens, b.attention_mask
    eos = getattr(getattr(model, "tokenizer", None), "eos_token_id", None)
    done = torch.zeros(len(b), dtype=torch.bool, device=tokens.device)
    new: list[Tensor] = []
    with apply(model, interventions=interventions):
        for _ in range(max_new_tokens):
            logits = model(tokens, attention_mask=mask)
            nxt = logits[:, -1].argmax(-1)
            if stop_at_eos and eos is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
                done |= nxt == eos
            new.append(nxt)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            if stop_at_eos and eos is not None and bool(done.all()):
                break
    return torch.stack(new, dim=1)


def generate(
    model: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 20,
    interventions: Sequence[Any] = (),
    batch_size: int = 32,
    progress: bool = False,
    stop_at_eos: bool = True,
) -> list[str]:
    """Greedy continuations as text (the prompt excluded, special tokens dropped)."""
    out: list[str] = []
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc="generate", disable=not progress):
        chunk = list(prompts[start : start + batch_size])
        ids = greedy_tokens(
            model,
            chunk,
            max_new_tokens=max_new_tokens,
            interventions=interventions,
            stop_at_eos=stop_at_eos,
        )
        out.extend(model.tokenizer.decode(row, skip_special_tokens=True) for row in ids.tolist())
    return out
