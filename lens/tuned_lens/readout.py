"""What training and evaluation share: one forward capturing every layer's residual at the
real tokens, and per-token KL(final distribution || a layer's readout), decoded exactly as
the logit lens decodes (``lens.readout.decode``: final norm with the vector's own
statistics, then the unembedding). Chunks of rows are sized by
``lens.readout.kernel.chunk_rows``, the one home of full-vocabulary chunk sizing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interventions.sites import hook_name
from lens.hooks import Probe, apply
from lens.readout import decode
from lens.readout.kernel import chunk_rows

__all__ = ["capture", "chunk_rows", "kl_per_token", "readout_logprobs"]


@torch.no_grad()
def capture(
    model: Any, tokens: Tensor, mask: Tensor, layers: Sequence[int], site: str
) -> tuple[Float[Tensor, "layer n d_model"], Float[Tensor, "n d_vocab"]]:
    """Residuals at ``site`` of each of ``layers`` and the model's final log-probabilities,
    both at the real tokens only (float32)."""
    probes = [Probe(hook_name(site, layer)) for layer in layers]
    with apply(model, probes=probes):
        logits = model(tokens, attention_mask=mask)
    keep = mask.bool()
    resid = torch.stack([p.value[keep].float() for p in probes])
    return resid, torch.log_softmax(logits[keep].float(), dim=-1)


def readout_logprobs(model: Any, h: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_vocab"]:
    """``log_softmax(unembed(final_norm(h)))`` in float32 (differentiable in ``h``)."""
    return torch.log_softmax(decode(model, h.float()).float(), dim=-1)


def kl_per_token(
    target_logp: Float[Tensor, "n d_vocab"], logq: Float[Tensor, "n d_vocab"]
) -> Float[Tensor, " n"]:
    """``KL(p || q) = sum_v p_v (log p_v - log q_v)`` per row, in nats."""
    return (target_logp.exp() * (target_logp - logq)).sum(-1)
