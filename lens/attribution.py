"""Direct logit attribution: the last real token's logit (difference) split into the
embedding, every attention head, every attention bias, every MLP and the final biases.

The final norm is linear once its scale is fixed; the scale is frozen from the real run, so
the parts sum exactly to the real value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interventions import bridge as hb
from lens.hooks import Probe, apply
from lens.patching.pairs import Token
from lens.tokens import as_batch, token_ids


@dataclass
class DirectLogitAttribution:
    """Parts of ``logit[answer] - logit[wrong]`` at each prompt's last real token.

    Attributes:
        embed: token (+ learned position) embeddings, ``[batch]``.
        heads: every head, ``[batch, layer, head]``.
        attn_bias: each layer's attention output bias, ``[batch, layer]``.
        mlp: each MLP's output (its bias included), ``[batch, layer]``.
        bias: the final norm's bias and the unembedding bias, ``[batch]``.
        total: the real value, ``[batch]``; the parts sum to it.
    """

    embed: Float[Tensor, " batch"]
    heads: Float[Tensor, "batch layer head"]
    attn_bias: Float[Tensor, "batch layer"]
    mlp: Float[Tensor, "batch layer"]
    bias: Float[Tensor, " batch"]
    total: Float[Tensor, " batch"]

    def parts_sum(self) -> Float[Tensor, " batch"]:
        """Sum of every part (equals ``total`` up to float error)."""
        return (
            self.embed
            + self.heads.sum((1, 2))
            + self.attn_bias.sum(1)
            + self.mlp.sum(1)
            + self.bias
        )

    def top_heads(self, k: int = 10) -> list[tuple[int, int, float]]:
        """The ``k`` heads with the largest mean part over the batch: (layer, head, value)."""
        mean = self.heads.mean(0)
        order = mean.flatten().abs().argsort(descending=True)[:k]
        n_heads = mean.shape[1]
        return [(int(i) // n_heads, int(i) % n_heads, float(mean.flatten()[i])) for i in order]


def direct_logit_attribution(
    model: Any,
    prompts: Any,
    answer: Token | Sequence[Token],
    wrong: Token | Sequence[Token] | None = None,
) -> DirectLogitAttribution:
    """Split the answer's logit (minus ``wrong``'s) at the last real token into components.

    Args:
        model: a TransformerBridge.
        prompts: text, token-id lists or a ``lens.tokens`` Batch (left-padded when text).
        answer, wrong: one token for every prompt or one per prompt, each an id, ``"id:N"``
            or text of one token under :func:`lens.tokens.token_id`'s rule (text of several
            tokens, or one the tokenizer does not know, is refused).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> dla = direct_logit_attribution(model, [[1, 2, 3], [4, 5, 6]], answer=7, wrong=8)
        >>> tuple(dla.heads.shape), bool((dla.parts_sum() - dla.total).abs().max() < 1e-4)
        ((2, 3, 4), True)
    """
    batch = as_batch(model, prompts, padding_side="left")
    batch.to(getattr(model.cfg, "device", None) or "cpu")
    n, n_layers = len(batch), int(model.cfg.n_layers)
    good = token_ids(model, answer, n=n, what="answer")
    bad = None if wrong is None else token_ids(model, wrong, n=n, what="wrong")
    embeds = [Probe(name, positions="last") for name in hb.embed_hooks(model)]
    zs = [Probe(hb.z_hook(layer), positions="last") for layer in range(n_layers)]
    mlps = [Probe(f"blocks.{layer}.hook_mlp_out", positions="last") for layer in range(n_layers)]
    scale = Probe(hb.FINAL_SCALE_HOOK, positions="last")
    with torch.no_grad(), apply(model, probes=[*embeds, *zs, *mlps, scale]):
        logits = model(batch.tokens, attention_mask=batch.attention_mask)
    with torch.no_grad():
        rows = torch.arange(n, device=logits.device)
        last = logits[rows, batch.last_positions.to(logits.device)]
        total = last[rows, good.to(last.device)]
        w_u, b_u = hb.unembed(model)
        direction = w_u[:, good].T  # [batch, d_model]
        if bad is not None:
            total = total - last[rows, bad.to(last.device)]
            direction = direction - w_u[:, bad].T
        kind, weight, norm_bias = hb.final_norm(model)
        read = direction * weight if weight is not None else direction
        frozen = scale.value.reshape(n, 1)

        def project(vectors: Tensor) -> Tensor:
            """Logit-difference part of residual vectors ``[batch, ..., d_model]``."""
            if kind == "LN":
                vectors = vectors - vectors.mean(-1, keepdim=True)
            shape = (n,) + (1,) * (vectors.ndim - 2)
            read_b = read.view(n, *([1] * (vectors.ndim - 2)), -1)
            return (vectors * read_b).sum(-1) / frozen.view(shape)

        embed = torch.stack([project(p.value) for p in embeds]).sum(0)
        heads = torch.stack(
            [
                project(torch.einsum("bhd,hdm->bhm", z.value, hb.w_o(model, layer)))
                for layer, z in enumerate(zs)
            ],
            dim=1,
        )
        zero = torch.zeros(n, device=logits.device)
        biases = [hb.b_o(model, layer) for layer in range(n_layers)]
        attn_bias = torch.stack(
            [zero if b is None else project(b.expand(n, -1)) for b in biases], dim=1
        )
        mlp = torch.stack([project(p.value) for p in mlps], dim=1)
        bias = zero.clone()
        if norm_bias is not None:
            bias = bias + (direction * norm_bias).sum(-1)
        if b_u is not None:
            bias = bias + b_u[good.to(b_u.device)]
            if bad is not None:
                bias = bias - b_u[bad.to(b_u.device)]
    return DirectLogitAttribution(embed, heads, attn_bias, mlp, bias, total)
