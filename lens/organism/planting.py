"""Plant exact ground truth into a bridge (random or the organism), for finder tests.

* :func:`plant_neurons`: chosen MLP neurons of one layer fire (post-activation > 0) exactly at
  the positions whose current token is in a given set, and are exactly 0 elsewhere.
* :func:`plant_direction`: a chosen residual direction is written (from one layer on) exactly at
  the positions whose token is in a trigger set, nowhere else, and it drives a target token.

How: two residual dimensions ``(j, k)`` are reserved as a private "trigger channel". Every
writer of the residual stream (token and position embeddings, attention outputs, MLP outputs)
is edited so that it writes nothing into ``j`` and ``k``; the embeddings of trigger tokens then
get ``+c`` in ``j`` and ``-c`` in ``k``. So ``x_j - x_k`` is exactly ``2c`` at trigger tokens and
exactly 0 elsewhere, in every layer. A planted neuron reads ``(x_j - x_k)`` through the layer's
norm (RMSNorm or LayerNorm: the difference cancels LayerNorm's mean) with a zero bias, so its
pre-activation is 0 (activation exactly 0) off the set and positive on it. A planted direction
is the output column of such a neuron, after every other writer is made orthogonal to it.

The edits change the model a little elsewhere (two residual dimensions and, for directions, one
more direction are taken out of every writer). All edits are in place, under ``torch.no_grad``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interventions import bridge


@dataclass
class PlantedNeurons:
    """What :func:`plant_neurons` did: ``neurons`` of ``layer`` fire exactly on ``token_ids``;
    ``dims`` is the reserved residual pair and ``channel`` the value ``c`` written into it."""

    layer: int
    neurons: list[int]
    token_ids: list[int]
    dims: tuple[int, int]
    channel: float


@dataclass
class PlantedDirection:
    """What :func:`plant_direction` did. ``direction`` (unit norm, as actually planted: made
    orthogonal to the reserved dims) is written by ``neuron`` of ``layer`` at trigger tokens."""

    layer: int
    neuron: int
    direction: Float[Tensor, " d_model"]
    token_ids: list[int]
    target_token: int
    dims: tuple[int, int]


def _out_in(module: Any) -> Tensor:
    """The weight of a linear layer as an [out, in] view (transformers Conv1D stores [in, out])."""
    w = module.weight
    return w.T if type(module).__name__ == "Conv1D" else w


def _writers(model: Any) -> list[tuple[Tensor, Tensor | None]]:
    """(weight [d_model, ...] view whose rows are residual dims, bias or None) of every writer."""
    out: list[tuple[Tensor, Tensor | None]] = []
    out.append((bridge.embed_module(model).weight.T, None))
    pos = bridge.pos_embed_module(model)
    if pos is not None:
        out.append((pos.weight.T, None))
    for layer in range(len(bridge.blocks(model))):
        for mod in (
            bridge.attn_output_projection(model, layer),
            bridge.mlp_output_projection(model, layer),
        ):
            out.append((_out_in(mod), getattr(mod, "bias", None)))
    return out


def _remove_direction(w: Tensor, b: Tensor | None, u: Tensor) -> None:
    u = u.to(w.dtype)
    w -= torch.outer(u, u @ w)
    if b is not None:
        b -= (b @ u) * u


def _untie(model: Any) -> None:
    emb = bridge.embed_module(model)
    head = bridge.unembed_module(model)
    if head.weight.data_ptr() == emb.weight.data_ptr():
        head.weight = torch.nn.Parameter(head.weight.detach().clone())


def _weight(norm: bridge.NormParams) -> Tensor:
    if norm.weight is None:
        raise ValueError("planting needs norms with a weight; this model's norm has none")
    return norm.weight


def _ln2(model: Any, layer: int) -> bridge.NormParams:
    """Block ``layer``'s pre-MLP norm as parameters."""
    return bridge.block_norm_params(model, layer, "ln2")


def _pick_dims(model: Any, layer: int) -> tuple[int, int]:
    used: set[int] = getattr(model, "_lens_planted_dims", set())
    g = _weight(_ln2(model, layer)).detach().abs()
    order = [int(i) for i in torch.argsort(g, descending=True) if int(i) not in used]
    if len(order) < 2:
        raise ValueError("no free residual dimensions left to plant into")
    return order[0], order[1]


def _check(model: Any, layer: int, ids: Sequence[int], what: str, size: int) -> list[int]:
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer {layer} out of range [0, {model.cfg.n_layers})")
    ids = [int(i) for i in ids]
    if not ids:
        raise ValueError(f"{what} must not be empty")
    bad = [i for i in ids if not 0 <= i < size]
    if bad:
        raise ValueError(f"{what} out of range [0, {size}): {bad}")
    return ids


@torch.no_grad()
def plant_neurons(
    model: Any,
    layer: int,
    neurons: Sequence[int],
    token_ids: Sequence[int],
    *,
    gain: float = 4.0,
    dims: tuple[int, int] | None = None,
) -> PlantedNeurons:
    """Make ``neurons`` of MLP ``layer`` fire exactly at positions holding a token of
    ``token_ids`` (``blocks.{layer}.mlp.hook_post`` > 0 there, exactly 0 elsewhere).

    Args:
        model: a TransformerBridge (RMSNorm or LayerNorm; gated or plain MLP). Edited in place.
        layer: the MLP layer.
        neurons: neuron indexes in ``[0, d_mlp)``.
        token_ids: the token set.
        gain: scale of the planted neurons' input weights.
        dims: the residual pair to reserve (default: two unused dims with large norm weight).

    Example:
        >>> import lens
        >>> from lens.organism.planting import plant_neurons
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> plant_neurons(model, 1, [5, 9], [10, 11]).dims != (0, 0)
        True
    """
    neurons = _check(model, layer, neurons, "neurons", model.cfg.d_mlp)
    token_ids = _check(model, layer, token_ids, "token_ids", model.cfg.d_vocab)
    j, k = dims if dims is not None else _pick_dims(model, layer)
    ln = _ln2(model, layer)
    g = _weight(ln).detach()
    if float(g[j].abs()) < 1e-3 or float(g[k].abs()) < 1e-3:
        raise ValueError(f"norm weight too small at dims {(j, k)}; pass other dims")
    _untie(model)
    emb = bridge.embed_module(model).weight
    c = float(emb.norm(dim=1).mean())
    for w, b in _writers(model):  # nothing writes into j or k any more
        w[[j, k]] = 0
        if b is not None:
            b[[j, k]] = 0
    emb[token_ids, j] = c
    emb[token_ids, k] = -c
    read = torch.zeros_like(g)
    read[j], read[k] = gain / g[j], -gain / g[k]
    offset = float(read @ ln.bias) if ln.bias is not None else 0.0
    for mod in bridge.mlp_input_projections(model, layer):
        w = _out_in(mod)
        w[neurons] = read.to(w.dtype)
        bias = getattr(mod, "bias", None)
        if bias is not None:
            bias[neurons] = -offset
    model.__dict__.setdefault("_lens_planted_dims", set()).update({j, k})
    return PlantedNeurons(layer, neurons, token_ids, (j, k), c)


@torch.no_grad()
def plant_direction(
    model: Any,
    layer: int,
    direction: Float[Tensor, " d_model"],
    token_ids: Sequence[int],
    target_token: int,
    *,
    neuron: int = 0,
    strength: float = 8.0,
    logit_gain: float = 20.0,
) -> PlantedDirection:
    """Write ``direction`` into the residual stream (from MLP ``layer`` on) exactly at positions
    holding a token of ``token_ids``, and make it drive ``target_token``'s logit.

    Every other writer is made orthogonal to the direction, so its component in
    ``blocks.{l}.hook_resid_post`` (l >= layer) is positive at trigger positions and exactly 0
    elsewhere; before ``layer`` it is 0 everywhere. The unembedding row of ``target_token`` gets
    ``logit_gain * direction / g`` (``g`` = final norm weight), adding
    ``logit_gain * (direction . x) / rms(x)`` to its logit.

    Example:
        >>> import lens, torch
        >>> from lens.organism.planting import plant_direction
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> p = plant_direction(model, 1, torch.randn(64), [10], target_token=3)
        >>> round(float(p.direction.norm()), 4)
        1.0
    """
    token_ids = _check(model, layer, token_ids, "token_ids", model.cfg.d_vocab)
    _check(model, layer, [target_token], "target_token", model.cfg.d_vocab)
    _check(model, layer, [neuron], "neuron", model.cfg.d_mlp)
    direction = torch.as_tensor(direction, dtype=torch.float32).flatten()
    if direction.shape[0] != model.cfg.d_model or not torch.isfinite(direction).all():
        raise ValueError(f"direction must be a finite vector of size d_model={model.cfg.d_model}")
    dims = _pick_dims(model, layer)
    u = direction.clone()
    u[list(dims)] = 0
    if _ln2(model, layer).kind == "LN":  # LayerNorm centres: keep u zero-mean off the dims
        free = torch.ones_like(u, dtype=torch.bool)
        free[list(dims)] = False
        u[free] -= u[free].mean()
    if float(u.norm()) < 1e-6:
        raise ValueError("direction lies in the reserved dims; pass another direction")
    planted = plant_neurons(model, layer, [neuron], token_ids, dims=dims)
    dev = bridge.embed_module(model).weight.device
    u = (u / u.norm()).to(dev)
    for w, b in _writers(model):
        _remove_direction(w, b, u)
    out = _out_in(bridge.mlp_output_projection(model, layer))
    out[:, neuron] = (strength * u).to(out.dtype)
    head = _out_in(bridge.unembed_module(model))
    g = _weight(bridge.final_norm(model)).detach()
    head[target_token] += (logit_gain * u / g).to(head.dtype)
    return PlantedDirection(layer, neuron, u.cpu(), token_ids, int(target_token), planted.dims)
