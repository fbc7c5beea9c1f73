"""Every TransformerLens 4.x internal that lens and interventions reach, in one module.

``TransformerBridge`` wraps each Hugging Face module in a bridge component whose
``original_component`` is the real ``nn.Module``; its classic hook names
(``blocks.0.hook_resid_post``) are aliases resolved by ``bridge_core``. Code elsewhere asks
this module for "the unembedding" or "block 3's attention output projection" and never
spells those attributes itself, so a TransformerLens upgrade touches this file only.

Attention heads, as TransformerLens 4.3 lays them out:

- ``blocks.{l}.attn.hook_z`` is ``[batch, pos, n_heads, d_head]`` on both families; on
  grouped-query models (Llama with ``n_key_value_heads < n_heads``) the bridge has already
  expanded the key/value heads, so query head ``h`` reads key/value head
  ``h // (n_heads // n_key_value_heads)``. Writing to ``hook_z`` changes the attention output.
  A hook there that returns nothing is skipped by autograd: a gradient tap must return a view.
- ``blocks.{l}.attn.hook_pattern`` is ``[batch, n_heads, query_pos, key_pos]``.
- ``blocks.{l}.attn.hook_result`` is named but never fires in 4.3: a head's output is
  ``z[..., h, :] @ W_O[h]`` with ``W_O`` ``[n_heads, d_head, d_model]``; ``b_O`` is added once.
- The residual stream before the final norm is embedding (+ learned positions on GPT-2) plus
  every ``hook_attn_out`` and ``hook_mlp_out``; the final norm's scale is ``ln_final.hook_scale``.
- A hook that returns a new value changes the forward, but the gradient of the original
  computation still flows where the returned tensor was built from it.

It sits at the bottom of the import graph (``interventions`` and ``lens`` both import it; it
imports neither). Add new accessors here, one small function each.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn

BlockNorm = Literal["ln1", "ln2"]
NormKind = Literal["LN", "RMS"]
# The accessors below return torch modules. Typed Any on purpose: torch types every module
# attribute (``.weight``) as ``Tensor | Module``, which no caller could use unchecked.
Module = Any


def alias_map(model: Any) -> dict[str, str]:
    """Classic hook name -> canonical hook name (e.g. ``blocks.0.hook_resid_post`` ->
    ``blocks.0.hook_out``), as TransformerLens 4.x builds it from ``model.hook_dict``."""
    from transformer_lens.model_bridge.bridge_core import (  # noqa: PLC0415  (slow import)
        build_alias_to_canonical_map,
    )

    return build_alias_to_canonical_map(model.hook_dict)


def original(component: Any, what: str = "component") -> Module:
    """The wrapped ``nn.Module`` of a bridge component (a plain module is returned as is)."""
    module = getattr(component, "original_component", component)
    if not isinstance(module, nn.Module):
        raise ValueError(f"{what} has no underlying torch module; this model is not supported")
    return module


def has_original(component: Any) -> bool:
    """Whether ``component`` is a bridge component with a wrapped module."""
    return getattr(component, "original_component", None) is not None


def blocks(model: Any) -> list[Any]:
    """The transformer blocks (bridge components), in order."""
    return list(model.blocks)


def _block(model: Any, layer: int) -> Any:
    n = len(model.blocks)
    if not 0 <= layer < n:
        raise ValueError(f"layer {layer} out of range; this model has layers 0..{n - 1}")
    return model.blocks[layer]


def _sub(component: Any, path: str, where: str) -> Module:
    owner = component
    for part in path.split("."):
        owner = getattr(owner, part, None)
        if owner is None:
            raise ValueError(f"{where} has no {path}; this architecture is not supported")
    return original(owner, f"{where}.{path}")


def embed_module(model: Any) -> Module:
    """The token embedding (``weight`` is ``[d_vocab, d_model]``)."""
    return original(model.embed, "embed")


def pos_embed_module(model: Any) -> Module | None:
    """The learned positional embedding, or None (rotary models have none)."""
    pos = getattr(model, "pos_embed", None)
    return original(pos, "pos_embed") if pos is not None and has_original(pos) else None


def attn_output_projection(model: Any, layer: int) -> Module:
    """Block ``layer``'s attention output projection (``W_O``; Linear or HF Conv1D)."""
    return _sub(_block(model, layer), "attn.o", f"blocks.{layer}")


def mlp_output_projection(model: Any, layer: int) -> Module:
    """Block ``layer``'s MLP output projection (``W_out``; Linear or HF Conv1D)."""
    return _sub(_block(model, layer), "mlp.out", f"blocks.{layer}")


def mlp_input_projections(model: Any, layer: int) -> list[Module]:
    """Block ``layer``'s MLP input projections: ``[W_in]``, or ``[W_in, W_gate]`` when gated."""
    mlp = _block(model, layer).mlp
    out: list[Module] = [_sub(mlp, "in", f"blocks.{layer}.mlp")]
    if hasattr(mlp, "gate"):
        out.append(_sub(mlp, "gate", f"blocks.{layer}.mlp"))
    return out


def block_norm(model: Any, layer: int, which: BlockNorm) -> Module:
    """Block ``layer``'s pre-attention (``"ln1"``) or pre-MLP (``"ln2"``) norm."""
    return _sub(_block(model, layer), which, f"blocks.{layer}")


def final_norm_module(model: Any) -> Module:
    """The final LayerNorm/RMSNorm before the unembedding."""
    return original(model.ln_final, "ln_final")


def unembed_module(model: Any) -> Module:
    """The unembedding (``weight`` is ``[d_vocab, d_model]``, optional ``bias``)."""
    return original(model.unembed, "unembed")


def forward_pre_hook_count(model: Any) -> int:
    """Number of forward pre-hooks on the model itself (where ``lens.apply`` records masks)."""
    return len(model._forward_pre_hooks)


def forward_hook_count(model: Any) -> int:
    """Number of forward hooks on the model itself (where ``lens.apply`` ends each forward)."""
    return len(model._forward_hooks)


def hook_registry(model: Any) -> dict[str, Any]:
    """The live canonical hook name -> HookPoint registry (not a copy: read it, never edit)."""
    return model._hook_registry


# --- attention heads ------------------------------------------------------------------


def z_hook(layer: int) -> str:
    """Hook name of the per-head attention values ``[batch, pos, n_heads, d_head]``."""
    return f"blocks.{layer}.attn.hook_z"


def pattern_hook(layer: int) -> str:
    """Hook name of the attention pattern ``[batch, n_heads, query_pos, key_pos]``."""
    return f"blocks.{layer}.attn.hook_pattern"


def n_heads(model: Any) -> int:
    """Number of query heads per layer."""
    return int(model.cfg.n_heads)


def kv_head(model: Any, head: int) -> int:
    """The key/value head that query head ``head`` reads (itself without grouped queries)."""
    n_kv = getattr(model.cfg, "n_key_value_heads", None) or n_heads(model)
    return head // (n_heads(model) // int(n_kv))


def w_o(model: Any, layer: int) -> Tensor:
    """Output weights of layer ``layer``'s heads, ``[n_heads, d_head, d_model]``."""
    return _block(model, layer).attn.W_O


def b_o(model: Any, layer: int) -> Tensor | None:
    """Output bias of layer ``layer``'s attention ``[d_model]`` (None when absent)."""
    return getattr(attn_output_projection(model, layer), "bias", None)


def embed_hooks(model: Any) -> list[str]:
    """Hooks whose outputs, summed, are the residual stream entering block 0."""
    names = ["hook_embed"]
    if getattr(model.cfg, "positional_embedding_type", "") == "standard":
        names.append("hook_pos_embed")
    return names


# --- final norm and unembedding as tensors ---------------------------------------------

FINAL_SCALE_HOOK = "ln_final.hook_scale"
# The unembedding's input ``[batch, pos, d_model]``; a hook may return fewer positions
# (``[batch, k, d_model]``) and the logits then cover only those.
UNEMBED_INPUT_HOOK = "unembed.hook_in"


def final_norm(model: Any) -> tuple[NormKind, Tensor | None, Tensor | None]:
    """The final norm's kind (``"LN"`` centres, ``"RMS"`` does not), weight and bias."""
    kind: NormKind = "LN" if str(model.cfg.normalization_type).startswith("LN") else "RMS"
    norm = final_norm_module(model)
    weight = getattr(norm, "weight", None)
    bias = getattr(norm, "bias", None) if kind == "LN" else None
    return kind, weight, bias


def unembed(model: Any) -> tuple[Tensor, Tensor | None]:
    """``W_U`` ``[d_model, vocab]`` and ``b_U`` ``[vocab]`` (None when absent)."""
    module = unembed_module(model)
    return module.weight.T, getattr(module, "bias", None)
