"""Direct logit attribution: the last real token's logit (difference) split into the
embedding, every attention head, every attention bias, every MLP and the final biases.

The final norm is linear once its scale is fixed; the scale is frozen from the real run, so
the parts sum exactly to the real value. Parallel attention + MLP blocks (GPT-NeoX) need
nothing special (the residual is still embedding + every attention and MLP output); a norm on
the attention output (Gemma-2) is frozen the same way; soft-capped logits are not additive
and are refused unless the pre-cap logits are asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
    *,
    answer: Token | Sequence[Token],
    wrong: Token | Sequence[Token] | None = None,
    logits: Literal["final", "pre_cap"] = "final",
) -> DirectLogitAttribution:
    """Split the answer's logit (minus ``wrong``'s) at the last real token into components.

    The final norm's scale is frozen from the real run (Gemma's ``1 + w`` weight included),
    and so is the scale of a norm after the attention output (Gemma-2's post-attention norm),
    so the parts sum exactly to ``total``.

    Args:
        model: a TransformerBridge.
        prompts: text, token-id lists or a ``lens.tokens`` Batch (left-padded when text).
        answer, wrong: one token for every prompt or one per prompt, each an id, ``"id:N"``
            or text of one token under :func:`lens.tokens.token_id`'s rule (text of several
            tokens, or one the tokenizer does not know, is refused).
        logits: ``"final"`` splits the model's output logits; on a model that soft-caps them
            (Gemma-2: ``c * tanh(z / c)``, not additive) it raises: pass ``"pre_cap"`` to
            split ``z``, the logits before the cap (``total`` is then that real value).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> dla = direct_logit_attribution(model, [[1, 2, 3], [4, 5, 6]], answer=7, wrong=8)
        >>> tuple(dla.heads.shape), bool((dla.parts_sum() - dla.total).abs().max() < 1e-4)
        ((2, 3, 4), True)
    """
    if logits not in ("final", "pre_cap"):
        raise ValueError(f"logits must be 'final' or 'pre_cap', got {logits!r}")
    cap = hb.logit_soft_cap(model)
    if cap is not None and logits == "final":
        raise ValueError(
            f"this model ({hb.architecture(model)}) soft-caps its logits "
            f"({cap:g} * tanh(z / {cap:g})), which no sum of parts reproduces; pass "
            "logits='pre_cap' to attribute the logits before the cap"
        )
    batch = as_batch(model, prompts, padding_side="left")
    batch.to(getattr(model.cfg, "device", None) or "cpu")
    n, n_layers = len(batch), int(model.cfg.n_layers)
    good = token_ids(model, answer, n=n, what="answer")
    bad = None if wrong is None else token_ids(model, wrong, n=n, what="wrong")
    embeds = [Probe(name, positions="last") for name in hb.embed_hooks(model)]
    zs = [Probe(hb.z_hook(layer), positions="last") for layer in range(n_layers)]
    mlps = [Probe(f"blocks.{layer}.hook_mlp_out", positions="last") for layer in range(n_layers)]
    scale = Probe(hb.FINAL_SCALE_HOOK, positions="last")
    posts = [hb.attn_post_norm(model, layer) for layer in range(n_layers)]
    post_scales = {
        layer: Probe(post[1], positions="last")
        for layer, post in enumerate(posts)
        if post is not None
    }
    unembed_in = Probe(hb.UNEMBED_INPUT_HOOK, positions="last")
    probes = [*embeds, *zs, *mlps, scale, *post_scales.values(), unembed_in]
    with torch.no_grad(), apply(model, probes=probes):
        out = model(batch.tokens, attention_mask=batch.attention_mask)
    with torch.no_grad():
        rows = torch.arange(n, device=out.device)
        w_u, b_u = hb.unembed(model)
        direction = w_u[:, good].T  # [batch, d_model]
        if bad is not None:
            direction = direction - w_u[:, bad].T
        if logits == "final":
            last = out[rows, batch.last_positions.to(out.device)]
        else:  # the unembedding of the real run's last normalized residual, before the cap
            last = unembed_in.value.reshape(n, -1) @ w_u
            last = last if b_u is None else last + b_u
        total = last[rows, good.to(last.device)]
        if bad is not None:
            total = total - last[rows, bad.to(last.device)]
        norm = hb.final_norm(model)
        read = direction * norm.weight if norm.weight is not None else direction
        frozen = scale.value.reshape(n, 1)

        def project(vectors: Tensor) -> Tensor:
            """Logit-difference part of residual vectors ``[batch, ..., d_model]``."""
            if norm.kind == "LN":
                vectors = vectors - vectors.mean(-1, keepdim=True)
            shape = (n,) + (1,) * (vectors.ndim - 2)
            read_b = read.view(n, *([1] * (vectors.ndim - 2)), -1)
            return (vectors * read_b).sum(-1) / frozen.view(shape)

        def attn_part(layer: int, vectors: Tensor) -> Tensor:
            """Residual contribution of attention-output pieces (through a post-norm, whose
            scale is frozen from the run, when the block has one)."""
            post = posts[layer]
            if post is None:
                return vectors
            params = post[0]
            if params.kind == "LN":
                vectors = vectors - vectors.mean(-1, keepdim=True)
            shape = (n,) + (1,) * (vectors.ndim - 2) + (1,)
            vectors = vectors / post_scales[layer].value.reshape(shape)
            return vectors * params.weight if params.weight is not None else vectors

        embed = torch.stack([project(p.value) for p in embeds]).sum(0)
        heads = torch.stack(
            [
                project(
                    attn_part(layer, torch.einsum("bhd,hdm->bhm", z.value, hb.w_o(model, layer)))
                )
                for layer, z in enumerate(zs)
            ],
            dim=1,
        )
        zero = torch.zeros(n, device=out.device)

        def bias_part(layer: int) -> Tensor:
            """The attention output bias (and a post-norm's bias) of ``layer``."""
            b_o, post = hb.b_o(model, layer), posts[layer]
            vector = zero.new_zeros(n, int(model.cfg.d_model))
            if b_o is not None:
                vector = vector + attn_part(layer, b_o.expand(n, -1))
            if post is not None and post[0].bias is not None:
                vector = vector + post[0].bias
            return project(vector)

        attn_bias = torch.stack([bias_part(layer) for layer in range(n_layers)], dim=1)
        mlp = torch.stack([project(p.value) for p in mlps], dim=1)
        bias = zero.clone()
        if norm.bias is not None:
            bias = bias + (direction * norm.bias).sum(-1)
        if b_u is not None:
            bias = bias + b_u[good.to(b_u.device)]
            if bad is not None:
                bias = bias - b_u[bad.to(b_u.device)]
    return DirectLogitAttribution(embed, heads, attn_bias, mlp, bias, total)
