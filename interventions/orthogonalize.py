"""Bake a direction ablation into the weights that write to the residual stream.

After ``orthogonalize(model, r)`` a plain forward equals the forward under
``DirectionAblation(r)`` at every layer and position (default sites): every writer's output
``y`` becomes ``y - (y . r_hat) r_hat``. The writers are the token embedding, the learned
positional embedding (if any), and each block's attention output projection and MLP output
projection, biases included. ``nn.Linear`` weights are ``[out, in]``; transformers' ``Conv1D``
(HF GPT-2) stores ``[in, out]``; embeddings are ``[rows, d_model]``.

A token embedding tied to the unembedding (HF GPT-2, stories260k) is untied first (the
embedding gets its own copy) so that the readout is left unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from interventions import bridge
from interventions._common import as_vector, check_d_model, unit


@dataclass(eq=False)
class Orthogonalization:
    """The record of one weight edit; ``restore()`` (or leaving the ``with`` block) undoes it
    bit-exactly. Without ``restore`` the edit is permanent."""

    model: Any
    direction: Tensor
    _saved: list[tuple[Tensor, Tensor]] = field(default_factory=list, repr=False)
    _swapped: list[tuple[Any, str, Any]] = field(default_factory=list, repr=False)
    restored: bool = False

    def restore(self) -> None:
        """Put the original weights back exactly (idempotent)."""
        with torch.no_grad():
            while self._saved:
                param, original = self._saved.pop()
                param.copy_(original)
            while self._swapped:
                module, name, original_param = self._swapped.pop()
                setattr(module, name, original_param)
        self.restored = True

    def __enter__(self) -> Orthogonalization:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()


def _writers(model: Any) -> list[tuple[Any, str]]:
    """(module, layout) for every weight that writes to the residual stream."""
    out: list[tuple[Any, str]] = [(bridge.embed_module(model), "rows")]
    pos = bridge.pos_embed_module(model)
    if pos is not None:
        out.append((pos, "rows"))
    for layer in range(len(bridge.blocks(model))):
        post = bridge.output_norms(model, layer)
        if post:
            raise ValueError(
                f"orthogonalize: {bridge.architecture(model)} normalises block outputs after "
                f"their projections (blocks.{layer}.{', '.join(post)}: post-norms), so edited "
                "weights cannot keep the direction out of the residual stream; use "
                "DirectionAblation hooks on this architecture"
            )
        for path, get in (
            ("attn.o", bridge.attn_output_projection),
            ("mlp.out", bridge.mlp_output_projection),
        ):
            try:
                module = get(model, layer)
            except ValueError:
                raise ValueError(
                    f"orthogonalize: block {layer} has no {path} projection; this architecture "
                    "is not supported"
                ) from None
            out.append((module, _layout(module, f"blocks.{layer}.{path}")))
    return out


def _layout(module: nn.Module, where: str) -> str:
    if isinstance(module, nn.Linear):
        return "out_in"
    if type(module).__name__ == "Conv1D":  # transformers.pytorch_utils.Conv1D: y = x W + b
        return "in_out"
    raise ValueError(f"orthogonalize: {where} is a {type(module).__name__}, not Linear/Conv1D")


def _project(weight: Tensor, r: Tensor, layout: str) -> Tensor:
    """Remove r from the output side of ``weight`` (computed in float64)."""
    w = weight.double()
    r = r.to(weight.device, torch.float64)
    if layout == "out_in":  # output index first: W' = W - r (r^T W)
        w = w - torch.outer(r, r @ w)
    else:  # "rows"/"in_out": output index last: W' = W - (W r) r^T
        w = w - torch.outer(w @ r, r)
    return w.to(weight.dtype)


def _shares_storage(a: Tensor, b: Tensor | None) -> bool:
    return b is not None and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def orthogonalize(model: Any, direction: Float[Tensor, " d_model"]) -> Orthogonalization:
    """Edit ``model``'s residual-stream writers so that none can write along ``direction``.

    Permanent unless undone: call ``.restore()`` on the result, or use it as a context manager
    (weights restored bit-exactly on exit, also on an exception).

    Args:
        model: a TransformerBridge.
        direction: a ``[d_model]`` vector (normalised internally; must be finite, non-zero).

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> r = torch.randn(64)
        >>> with orthogonalize(model, r):
        ...     logits = model(torch.tensor([[1, 2, 3]]))   # == under DirectionAblation(r)
    """
    vector = as_vector(direction, "direction")
    check_d_model(vector, model, "orthogonalize direction")
    r_hat = unit(vector, "direction")
    writers = _writers(model)  # validates the architecture before anything changes
    d_model = int(model.cfg.d_model)
    for module, layout in writers:
        out_dim = module.weight.shape[0 if layout == "out_in" else -1]
        if out_dim != d_model:
            raise ValueError(
                f"orthogonalize: {type(module).__name__} writes {out_dim} features, not {d_model}"
            )
    record = Orthogonalization(model, r_hat)
    unembed_w = getattr(bridge.unembed_module(model), "weight", None)
    try:
        with torch.no_grad():
            for module, layout in writers:
                weight = module.weight
                if layout == "rows" and _shares_storage(weight, unembed_w):
                    record._swapped.append((module, "weight", weight))
                    module.weight = nn.Parameter(
                        _project(weight, r_hat, layout), requires_grad=weight.requires_grad
                    )
                else:
                    record._saved.append((weight, weight.detach().clone()))
                    weight.copy_(_project(weight, r_hat, layout))
                bias = getattr(module, "bias", None)
                if bias is not None:
                    record._saved.append((bias, bias.detach().clone()))
                    bias.copy_(_project(bias[None], r_hat, "rows")[0])
    except BaseException:
        record.restore()
        raise
    return record
