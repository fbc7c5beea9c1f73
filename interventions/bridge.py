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

import weakref
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

BlockNorm = Literal["ln1", "ln2", "ln1_post", "ln2_post"]
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
    """Block ``layer``'s pre-attention (``"ln1"``) or pre-MLP (``"ln2"``) norm, or a
    post-norm (``"ln1_post"``/``"ln2_post"``, Gemma-2); its values: :func:`block_norm_params`."""
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


def add_forward_hook(hook_point: Any, fn: Any) -> Any:
    """Add ``fn`` as a forward hook of a HookPoint; returns the handle to remove it with."""
    return hook_point.add_hook(fn, dir="fwd")


def remove_forward_hook(hook_point: Any, handle: Any) -> None:
    """Remove exactly the hook behind ``handle`` (TransformerLens keeps a list of its own)."""
    handle.hook.remove()
    hook_point.fwd_hooks[:] = [h for h in hook_point.fwd_hooks if h is not handle]


def forward_hooks_on(hook_point: Any) -> int:
    """Forward hooks a HookPoint runs, whoever added them (TransformerLens or plain torch)."""
    return len(hook_point._forward_hooks)


def hooks_on(hook_point: Any) -> int:
    """Forward and backward hooks TransformerLens lists on a HookPoint (for leak checks)."""
    return len(hook_point.fwd_hooks) + len(hook_point.bwd_hooks)


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


@dataclass(frozen=True)
class NormParams:
    """A LayerNorm/RMSNorm as plain tensors: ``y = weight * (x - mean?) / sqrt(mean(x**2) + eps)
    + bias``.

    Attributes:
        kind: ``"LN"`` (subtracts the mean first) or ``"RMS"``.
        weight: the effective scale ``[d_model]``: Gemma-style norms store ``w`` and multiply
            by ``1 + w``; the ``+ 1`` is already applied here. None when the norm has none.
        bias: ``[d_model]`` or None.
        eps: added to the mean square.
    """

    kind: NormKind
    weight: Tensor | None
    bias: Tensor | None
    eps: float

    def apply(self, h: Tensor) -> Tensor:
        """The norm of ``h`` with ``h``'s own statistics (computed in float32, returned in
        ``h``'s dtype)."""
        x = h.float()
        if self.kind == "LN":
            x = x - x.mean(-1, keepdim=True)
        x = (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)).to(h.dtype)
        if self.weight is not None:
            x = x * self.weight.to(x.device, x.dtype)
        if self.bias is not None:
            x = x + self.bias.to(x.device, x.dtype)
        return x


# (kind, +1 offset) of each norm module, found once by running it (see norm_params).
_NORM_FORMS: weakref.WeakKeyDictionary[nn.Module, tuple[NormKind, bool]] = (
    weakref.WeakKeyDictionary()
)


def _candidates(model: Any) -> list[tuple[NormKind, bool]]:
    """Every (kind, offset) pair, the one the config declares first."""
    declared: NormKind = "LN" if str(model.cfg.normalization_type).startswith("LN") else "RMS"
    offset = bool(getattr(model.cfg, "rmsnorm_uses_offset", False))
    forms: list[tuple[NormKind, bool]] = [(declared, offset)]
    for kind in ("LN", "RMS"):
        for off in (False, True):
            if (kind, off) not in forms:
                forms.append((kind, off))
    return forms


def _norm_form(module: nn.Module, model: Any, where: str, build: Any) -> tuple[NormKind, bool]:
    """Which (kind, offset) the module computes, checked by running it once on a probe."""
    known = _NORM_FORMS.get(module)
    if known is not None:
        return known
    weight = getattr(module, "weight", None)
    ref = weight if isinstance(weight, Tensor) else next(module.parameters(), None)
    device = ref.device if ref is not None else "cpu"
    dtype = ref.dtype if ref is not None else torch.float32
    gen = torch.Generator().manual_seed(0)
    d = int(model.cfg.d_model) if weight is None else int(weight.shape[-1])
    probe = (torch.randn(3, d, generator=gen) * 2 + 1).to(device, dtype)  # mean != 0: LN != RMS
    with torch.no_grad():
        out = module(probe).float()
        tol = (1e-4 if dtype in (torch.float32, torch.float64) else 3e-2) * (1 + out.abs().max())
        for form in _candidates(model):
            if form[1] and weight is None:
                continue
            guess = build(*form).apply(probe.float())
            if float((guess - out).abs().max()) <= tol:
                _NORM_FORMS[module] = form
                return form
    raise ValueError(
        f"{where} ({type(module).__name__}) computes neither LayerNorm nor RMSNorm (with or "
        "without a +1 weight offset); lens cannot read it out on this architecture"
    )


def norm_params(model: Any, module: nn.Module, where: str = "norm") -> NormParams:
    """The parameters of one of the model's norm modules (in its own dtype and device). Kind
    and offset are checked once against the module's own forward, so an unknown norm raises
    instead of being read with the wrong rule."""
    weight = getattr(module, "weight", None)
    weight = weight if isinstance(weight, Tensor) else None
    bias = getattr(module, "bias", None)
    bias = bias if isinstance(bias, Tensor) else None
    eps = getattr(module, "eps", None) or getattr(module, "variance_epsilon", None)
    eps = float(eps if eps is not None else model.cfg.eps)

    def build(kind: NormKind, offset: bool) -> NormParams:
        w = None if weight is None else (weight + 1.0 if offset else weight)
        return NormParams(kind, w, bias, eps)

    return build(*_norm_form(module, model, where, build))


def final_norm(model: Any) -> NormParams:
    """The final norm's parameters (the one home of this rule: readout, DLA and planting use
    it). Gemma-style ``1 + w`` weights come back with the offset applied.

    Example:
        >>> import lens
        >>> from interventions import bridge
        >>> p = bridge.final_norm(lens.load_model(lens.tiny_config("gpt2")))
        >>> p.kind, tuple(p.weight.shape), p.bias is not None
        ('LN', (64,), True)
    """
    return norm_params(model, final_norm_module(model), "ln_final")


def block_norm_params(model: Any, layer: int, which: BlockNorm) -> NormParams:
    """Parameters of block ``layer``'s norm ``which`` (offset applied, as :func:`final_norm`)."""
    return norm_params(model, block_norm(model, layer, which), f"blocks.{layer}.{which}")


def architecture(model: Any) -> str:
    """The model's architecture name, for messages (e.g. ``"Gemma2ForCausalLM"``)."""
    return str(getattr(model.cfg, "architecture", None) or type(model).__name__)


def output_norms(model: Any, layer: int) -> list[str]:
    """The norms block ``layer`` applies to its attention / MLP outputs before they join the
    residual stream (Gemma-2's ``ln1_post``, ``ln2_post``); empty on most architectures."""
    block = _block(model, layer)
    return [name for name in ("ln1_post", "ln2_post") if getattr(block, name, None) is not None]


def attn_post_norm(model: Any, layer: int) -> tuple[NormParams, str] | None:
    """The norm applied to block ``layer``'s attention output before it joins the residual
    stream (Gemma-2's ``post_attention_layernorm``) and the hook holding its scale, or None
    when the block has none (``hook_attn_out`` is then the sum of the heads' outputs)."""
    if "ln1_post" not in output_norms(model, layer):
        return None
    params = norm_params(model, block_norm(model, layer, "ln1_post"), f"blocks.{layer}.ln1_post")
    return params, f"blocks.{layer}.ln1_post.hook_scale"


def logit_soft_cap(model: Any) -> float | None:
    """The final logits' soft cap ``c`` (logits = ``c * tanh(z / c)``, Gemma-2), or None."""
    cap = getattr(model.cfg, "output_logits_soft_cap", None)
    return float(cap) if cap is not None and cap > 0 else None


def unembed(model: Any) -> tuple[Tensor, Tensor | None]:
    """``W_U`` ``[d_model, vocab]`` and ``b_U`` ``[vocab]`` (None when absent)."""
    module = unembed_module(model)
    return module.weight.T, getattr(module, "bias", None)
