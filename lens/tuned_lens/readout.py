"""What training and evaluation share: one forward capturing every layer's residual at the
real tokens, and per-token KL(final distribution || a layer's readout), decoded exactly as
the logit lens decodes (``lens.readout.decode``: final norm with the vector's own
statistics, then the unembedding)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from lens.hooks import Probe, apply
from lens.readout import decode

CHUNK_FLOATS = 1 << 24  # rows x vocab floats per decode chunk (64 MB of float32)


@torch.no_grad()
def capture(
    model: Any, tokens: Tensor, mask: Tensor, layers: Sequence[int], site: str
) -> tuple[Float[Tensor, "layer n d_model"], Float[Tensor, "n d_vocab"]]:
    """Residuals at ``blocks.{layer}.hook_{site}`` and the model's final log-probabilities,
    both at the real tokens only (float32)."""
    probes = [Probe(f"blocks.{layer}.hook_{site}") for layer in layers]
    with apply(model, probes=probes):
        logits = model(tokens, attention_mask=mask)
    keep = mask.bool()
    resid = torch.stack([p.value[keep].float() for p in probes])
    return resid, torch.log_softmax(logits[keep].float(), dim=-1)


def chunk_rows(model: Any) -> int:
    """Rows per decode chunk so that one ``[rows, d_vocab]`` buffer stays near 64 MB."""
    return max(1, CHUNK_FLOATS // int(model.cfg.d_vocab))


def readout_logprobs(model: Any, h: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_vocab"]:
    """``log_softmax(unembed(final_norm(h)))`` in float32 (differentiable in ``h``)."""
    return torch.log_softmax(decode(model, h.float()).float(), dim=-1)


def kl_per_token(
    target_logp: Float[Tensor, "n d_vocab"], logq: Float[Tensor, "n d_vocab"]
) -> Float[Tensor, " n"]:
    """``KL(p || q) = sum_v p_v (log p_v - log q_v)`` per row, in nats."""
    return (target_logp.exp() * (target_logp - logq)).sum(-1)
