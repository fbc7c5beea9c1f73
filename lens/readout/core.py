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


def final_norm(model: Any, h: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
    """The model's final LayerNorm/RMSNorm applied to ``h`` with statistics of ``h`` itself
    (parameters from :func:`interventions.bridge.final_norm`, Gemma's ``1 + w`` included)."""
    return bridge.final_norm(model).apply(h)


def unembed(model: Any, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Normalized residual -> logits through the model's unembedding (and its bias)."""
    head = bridge.unembed_module(model)
    logits = x @ head.weight.to(x.device, x.dtype).T
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias.to(x.device, x.dtype)
    cap = bridge.logit_soft_cap(model)
    if cap is not None:
        logits = cap * torch.tanh(logits / cap)
    return logits


def decode(model: Any, h: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Residual stream -> logits: ``unembed(final_norm(h))``."""
    return unembed(model, final_norm(model, h))
