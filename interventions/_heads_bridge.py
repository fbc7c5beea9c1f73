"""TransformerLens internals for attention heads and the final norm, in one place.

Everything lens needs to know about how TransformerLens 4.3's ``TransformerBridge`` lays out
attention heads lives here, so that an adapter can replace it in one go:

- ``blocks.{l}.attn.hook_z`` is ``[batch, pos, n_heads, d_head]`` on both families; on
  grouped-query models (Llama with ``n_key_value_heads < n_heads``) the bridge has already
  expanded the key/value heads, so query head ``h`` reads key/value head
  ``h // (n_heads // n_key_value_heads)``. Writing to ``hook_z`` changes the attention output.
- ``blocks.{l}.attn.hook_pattern`` is ``[batch, n_heads, query_pos, key_pos]``.
- ``blocks.{l}.attn.hook_result`` is named but never fires in 4.3: a head's output is
  ``z[..., h, :] @ W_O[h]`` with ``W_O`` ``[n_heads, d_head, d_model]``; ``b_O`` is added once.
- The residual stream before the final norm is embedding (+ learned positions on GPT-2) plus
  every ``hook_attn_out`` and ``hook_mlp_out``; the final norm's scale is ``ln_final.hook_scale``.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor


def z_hook(layer: int) -> str:
    """Hook name of the per-head attention values ``[batch, pos, n_heads, d_head]``."""
    return f"blocks.{layer}.attn.hook_z"


def pattern_hook(layer: int) -> str:
    """Hook name of the attention pattern ``[batch, n_heads, query_pos, key_pos]``."""
    return f"blocks.{layer}.attn.hook_pattern"


def n_heads(model: Any) -> int:
    return int(model.cfg.n_heads)


def kv_head(model: Any, head: int) -> int:
    """The key/value head that query head ``head`` reads (itself without grouped queries)."""
    n_kv = getattr(model.cfg, "n_key_value_heads", None) or n_heads(model)
    return head // (n_heads(model) // int(n_kv))


def w_o(model: Any, layer: int) -> Tensor:
    """Output weights of layer ``layer``'s heads, ``[n_heads, d_head, d_model]``."""
    return model.blocks[layer].attn.W_O


def b_o(model: Any, layer: int) -> Tensor | None:
    """Output bias of layer ``layer``'s attention ``[d_model]`` (None when absent)."""
    return getattr(model.blocks[layer].attn, "b_O", None)


def embed_hooks(model: Any) -> list[str]:
    """Hooks whose outputs, summed, are the residual stream entering block 0."""
    names = ["hook_embed"]
    if getattr(model.cfg, "positional_embedding_type", "") == "standard":
        names.append("hook_pos_embed")
    return names


FINAL_SCALE_HOOK = "ln_final.hook_scale"
# The unembedding's input ``[batch, pos, d_model]``; a hook may return fewer positions
# (``[batch, k, d_model]``) and the logits then cover only those.
UNEMBED_INPUT_HOOK = "unembed.hook_in"


def final_norm(model: Any) -> tuple[Literal["LN", "RMS"], Tensor | None, Tensor | None]:
    """The final norm's kind (``"LN"`` centres, ``"RMS"`` does not), weight and bias."""
    kind = "LN" if str(model.cfg.normalization_type).startswith("LN") else "RMS"
    ln = model.ln_final
    weight = getattr(ln, "w", None)
    bias = getattr(ln, "b", None) if kind == "LN" else None
    return kind, weight, bias


def unembed(model: Any) -> tuple[Tensor, Tensor | None]:
    """``W_U`` ``[d_model, vocab]`` and ``b_U`` ``[vocab]`` (None when absent)."""
    return model.W_U, getattr(model, "b_U", None)
