"""Reading the residual stream out through the model's own final norm and unembedding.

Shared by the logit lens and linear shortcuts (:mod:`lens.shortcut_fit`). The final norm is
recomputed from the vector it is given (its own mean/RMS statistics), never reusing the scale
cached by the last layer's forward (TransformerLens #1076). Computed from the weights, so no
hook fires while decoding.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interventions import _bridge
from interventions.base import Intervention
from lens.hooks import apply
from lens.tokens import Batch, PaddingSide, as_batch
from lens.tokens import batch as make_batch


def _norm_parts(model: Any) -> tuple[str, Tensor | None, Tensor | None, float]:
    ln = _bridge.final_norm_module(model)
    kind = (model.cfg.normalization_type or "LN").upper()
    eps = getattr(ln, "eps", None) or getattr(ln, "variance_epsilon", None) or model.cfg.eps
    weight = getattr(ln, "weight", None)
    bias = getattr(ln, "bias", None)
    if weight is not None and getattr(model.cfg, "rmsnorm_uses_offset", False):
        weight = weight + 1.0
    return ("RMS" if kind.startswith("RMS") else "LN"), weight, bias, float(eps)


def final_norm(model: Any, h: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
    """The model's final LayerNorm/RMSNorm applied to ``h`` with statistics of ``h`` itself."""
    kind, weight, bias, eps = _norm_parts(model)
    x = h.float()
    if kind == "RMS":
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    else:
        x = x - x.mean(-1, keepdim=True)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    x = x.to(h.dtype)
    if weight is not None:
        x = x * weight.to(x.device, x.dtype)
    if bias is not None:
        x = x + bias.to(x.device, x.dtype)
    return x


def unembed(model: Any, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Normalized residual -> logits through the model's unembedding (and its bias)."""
    head = _bridge.unembed_module(model)
    logits = x @ head.weight.to(x.device, x.dtype).T
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias.to(x.device, x.dtype)
    cap = getattr(model.cfg, "output_logits_soft_cap", -1.0)
    if cap is not None and cap > 0:
        logits = cap * torch.tanh(logits / cap)
    return logits


def decode(model: Any, h: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Residual stream -> logits: ``unembed(final_norm(h))``."""
    return unembed(model, final_norm(model, h))


@torch.no_grad()
def last_token_logits(
    model: Any,
    prompts: Any,
    *interventions: Intervention,
    batch_size: int = 16,
    padding_side: PaddingSide = "left",
) -> Float[Tensor, "batch d_vocab"]:
    """Next-token logits at each prompt's last real token, under ``interventions``.

    Args:
        model: a TransformerBridge.
        prompts: texts, token-id lists, a ``[batch, pos]`` tensor or a ``lens.tokens.Batch``.
        *interventions: installed (with ``lens.apply``) for the whole call.
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
