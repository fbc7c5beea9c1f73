"""The logit lens's decode kernel: a stack of residual vectors -> top-k, entropy, targets.

Vectors are normalized by the model's final norm (statistics recomputed from each vector) and
multiplied by ``W_U`` in chunks of rows, so the full ``[rows, vocab]`` logits never exist. Per
chunk the work is one matmul into a preallocated buffer plus a few streaming passes over it
(top-k, shift by the row maximum, ``exp`` into a second buffer, its sum, an in-place product
and its sum for the entropy); the two buffers are allocated once per call, not per chunk,
so a long decode does not pay page faults for fresh chunk-sized allocations (glibc maps
buffers above 32 MB afresh each time).

One home for the chunk sizing of every full-vocabulary readout (:func:`chunk_rows`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interventions import bridge
from lens.readout.core import final_norm

Norm = Literal["recompute", "none"]
NORMS: tuple[Norm, ...] = ("recompute", "none")
CHUNK_FLOATS = 1 << 24  # rows x vocab floats of one chunk buffer (64 MB of float32)


def chunk_rows(model: Any, floats: int = CHUNK_FLOATS) -> int:
    """Rows per decode chunk so that one ``[rows, d_vocab]`` float32 buffer holds ``floats``.

    Example:
        >>> import lens
        >>> chunk_rows(lens.load_model(lens.tiny_config("llama")))  # vocab 257
        65280
    """
    return max(1, floats // int(model.cfg.d_vocab))


@torch.no_grad()
def decode_stack(
    model: Any,
    h: Float[Tensor, "rows d_model"],
    *,
    top_k: int = 10,
    target_ids: Int[Tensor, " rows"] | None = None,
    category_matrix: Float[Tensor, "d_vocab category"] | None = None,
    norm: Norm = "recompute",
    chunk_size: int = 256,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
) -> dict[str, Tensor]:
    """Decode a stack of residual vectors in chunks of ``chunk_size`` rows (float32).

    For each row with logits ``z`` (``m`` its maximum, ``e = exp(z - m)``, ``S = sum e``):
    probabilities ``e / S``, entropy ``log S - sum(e (z - m)) / S`` (nats), both from a
    float32 cascade sum over the vocabulary.

    Extra memory: two ``min(chunk_size, rows) x d_vocab`` float32 buffers (plus one bool
    buffer of that size when ``target_ids`` are given), whatever the number of rows.

    Returns:
        ``top_ids``/``top_probs`` ``[rows, k]``, ``entropy`` ``[rows]`` (nats), and when asked
        ``target_probs``/``target_ranks`` ``[rows]`` and ``category_mass`` ``[rows, category]``.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> from lens.readout.kernel import decode_stack
        >>> out = decode_stack(model, torch.randn(4, 64), top_k=2)
        >>> out["top_ids"].shape, out["entropy"].shape
        (torch.Size([4, 2]), torch.Size([4]))
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if weight is None:
        weight, bias = unembed_parts(model)
    h = h.to(weight.dtype)  # float32 throughout, also for bf16/fp16 models
    x = final_norm(model, h) if norm == "recompute" else h
    cap = getattr(model.cfg, "output_logits_soft_cap", -1.0)
    n_rows, vocab = x.shape[0], weight.shape[0]
    size = max(1, min(chunk_size, n_rows))
    logits_buf = torch.empty(size, vocab, dtype=weight.dtype, device=x.device)
    exp_buf = torch.empty_like(logits_buf)
    w_t = weight.T
    parts: dict[str, list[Tensor]] = {"top_ids": [], "top_probs": [], "entropy": []}
    if target_ids is not None:
        parts |= {"target_probs": [], "target_ranks": []}
    if category_matrix is not None:
        parts["category_mass"] = []
    for start in range(0, n_rows, size):
        xc = x[start : start + size]
        z, e = logits_buf[: xc.shape[0]], exp_buf[: xc.shape[0]]
        torch.matmul(xc, w_t, out=z)
        if bias is not None:
            z.add_(bias)
        if cap is not None and cap > 0:
            z.div_(cap).tanh_().mul_(cap)
        values, ids = z.topk(top_k, dim=-1)
        if target_ids is not None:
            t = target_ids[start : start + size, None].to(z.device)
            z_t = z.gather(1, t)
            parts["target_ranks"].append((z > z_t).sum(-1))  # before the shift: exact
        z.sub_(values[:, :1])  # z - m <= 0: exp cannot overflow
        torch.exp(z, out=e)
        total = e.sum(-1)
        parts["top_ids"].append(ids)
        parts["top_probs"].append(torch.exp(values - values[:, :1]) / total[:, None])
        if target_ids is not None:
            parts["target_probs"].append(torch.exp(z_t[:, 0] - values[:, 0]) / total)
        if category_matrix is not None:
            parts["category_mass"].append((e @ category_matrix) / total[:, None])
        dot = e.mul_(z).sum(-1)  # sum e (z - m); e is not read again (faster than a bmm)
        parts["entropy"].append(total.log() - dot / total)
    return {k: torch.cat(v) for k, v in parts.items()}


def unembed_parts(model: Any) -> tuple[Tensor, Tensor | None]:
    """W_U as [vocab, d_model] and b_U, in float32 (converted once when the model is not)."""
    head = bridge.unembed_module(model)
    weight = head.weight.detach()
    bias = getattr(head, "bias", None)
    bias = None if bias is None else bias.detach().float()
    return weight.float(), bias
