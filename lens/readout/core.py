"""Reading the residual stream out through the model's own final norm and unembedding.

Shared by the logit lens, the tuned lens and linear shortcuts (:mod:`lens.shortcuts`).
The final norm is recomputed from the vector it is given (its own mean/RMS
statistics), never reusing the scale cached by the last layer's forward (TransformerLens
#1076). Computed from the weights, so no hook fires while decoding.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interventions import bridge


def _norm_parts(model: Any) -> tuple[str, Tensor | None, Tensor | None, float]:
    ln = bridge.final_norm_module(model)
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
    head = bridge.unembed_module(model)
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
