"""The logit lens: decode every layer's residual stream through the final norm and unembedding.

One forward per chunk of prompts captures, with probes, each requested layer's residual at the
requested positions only. The captured vectors of all layers are stacked into one
``[layers x positions, d_model]`` matrix, normalized by the model's final norm with statistics
recomputed from each vector (never the final layer's cached scale, TransformerLens #1076), and
multiplied by ``W_U`` in chunks of ``chunk_size`` rows, so the full
``[layers, batch, positions, vocab]`` logits never exist.

This module is the driver (capture, decode, place the results); argument checking lives in
:mod:`lens.logit_lens.args`, the decode kernel in :mod:`lens.readout.kernel`.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from interventions.base import Positions, validate_positions
from interventions.sites import hook_name
from lens.early_stop import StoppingProbe, forward_until
from lens.hooks import Probe, apply, hook_points_after
from lens.logit_lens.args import (
    SITES,
    LensSite,
    category_matrix,
    check_args,
    position_index,
    target_token_ids,
)
from lens.logit_lens.result import LogitLensResult
from lens.readout.kernel import NORMS, Norm, decode_stack, unembed_parts
from lens.tokens import Batch, PaddingSide, as_batch

__all__ = ["NORMS", "SITES", "LensSite", "Norm", "decode_stack", "logit_lens", "token_strings"]


@torch.no_grad()
def logit_lens(
    model: Any,
    prompts_or_batch: Any,
    *,
    layers: str | int | Sequence[int] = "all",
    site: LensSite = "resid_post",
    include_embed: bool = False,
    positions: Positions = "last",
    top_k: int = 10,
    targets: Any = None,
    categories: Mapping[str, Any] | None = None,
    norm: Norm = "recompute",
    batch_size: int = 32,
    chunk_size: int = 256,
    interventions: Sequence[Any] = (),
    padding_side: PaddingSide = "left",
    progress: bool = False,
    stop_early: bool = True,
    translator: Any = None,
) -> LogitLensResult:
    """Decode the residual stream of every requested layer at the requested positions.

    Each vector ``h`` is decoded as ``softmax(unembed(final_norm(h)))`` where the final
    LayerNorm/RMSNorm uses the mean/RMS of ``h`` itself (``norm="none"``: ``unembed(h)``).
    Decoding runs in float32.

    Memory: besides the model's own forward on ``batch_size`` prompts, lens keeps the captured
    residuals (``layers x batch_size x positions x d_model`` floats) and, while decoding, two
    ``chunk_size x block`` float32 tiles of the vocabulary (about 2 MB together, see
    :func:`lens.readout.kernel.decode_stack`) plus a few floats per row, whatever the number
    of layers, prompts and positions (a non-float32 model adds one float32 copy of ``W_U``).
    Outputs hold only top-k ids and probabilities, entropies, target statistics and category
    masses.

    Args:
        model: a TransformerBridge.
        prompts_or_batch: prompts (strings or token-id lists), a ``lens.tokens.Batch`` or a
            token tensor.
        layers: ``"all"``, one layer or a list (negative: counted from the end).
        site: ``"resid_post"`` (output of block l; its last layer gives the model's logits),
            ``"resid_pre"`` (input of block l), ``"resid_mid"`` (after attention), or a
            block's own output ``"attn_out"`` / ``"mlp_out"`` (see :mod:`interventions.sites`).
        include_embed: also decode the embedding output, the residual stream before block 0
            (``blocks.0.hook_resid_pre``: token plus positional embeddings), as a first row
            with layer number -1 in ``result.layers`` (label ``"embed"``). It is the first
            row of TransformerLens's ``accumulated_resid``.
        positions: ``"last"`` (last real token of each row), ``"all"`` (every position of the
            padded row; padding is not decoded and marked ``valid=False``), integer indices
            into the padded row (negative count from its end; decoded in increasing order,
            duplicates dropped), or a 1-D tensor with one index per prompt.
        top_k: number of top tokens kept per layer and position.
        targets: one target per prompt (or one for all): token ids, ``"id:N"`` or text of
            one token under :func:`lens.tokens.token_id`'s rule (``"Paris"`` and ``" Paris"``
            both name the word-start token; text of several tokens is refused). Gives
            ``target_probs`` and ``target_ranks``.
        categories: ``{name: token ids}`` (see :func:`lens.token_sets`); gives the probability
            mass of each category.
        norm: ``"recompute"`` (default) or ``"none"``.
        batch_size: prompts per forward.
        chunk_size: rows (layer x position vectors) per unembedding matmul.
        interventions: run the forward under these (composed with ``lens.apply``).
        padding_side: padding of text prompts: ``"left"`` or ``"right"``.
        progress: show a progress bar over prompt chunks.
        stop_early: end each forward as soon as the deepest requested residual is captured:
            the rest of the model (later blocks, final norm, the full-vocabulary logits of
            every position) is not computed, and ``interventions`` given here at later sites
            do not run (they cannot change the decoded residuals: the forward is causal in
            depth). When a hook this call did not install sits after that point (an outer
            ``lens.apply``'s probes or interventions, a user's hook), the forward runs to
            the end instead, so that hook still fires. False always runs the whole model.
        translator: a :class:`lens.tuned_lens.TunedLens` for this model: each layer's
            vectors go through its translator before the final norm (the tuned lens).

    Returns:
        A :class:`LogitLensResult` with ``[layer, batch, position, ...]`` arrays.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = lens.logit_lens(model, [[1, 2, 3], [4, 5]], top_k=5, targets=[7, 9])
        >>> res.top_ids.shape, res.target_ranks.shape
        ((3, 2, 1, 5), (3, 2, 1))
    """
    layer_list = check_args(model, layers, site, norm, top_k, batch_size, chunk_size, include_embed)
    validate_positions(positions)
    if translator is not None:
        if include_embed:
            raise ValueError("include_embed=True has no tuned-lens translator; leave it False")
        translator.check(model, layer_list, site)
    b = as_batch(model, prompts_or_batch, padding_side=padding_side)
    n_rows, seq = b.tokens.shape
    device = b.tokens.device
    pos_index, valid = position_index(positions, b)
    target_ids = target_token_ids(model, targets, n_rows)
    cat_names, cat_matrix = category_matrix(model, categories, device)

    hook_names = [hook_name(site, layer) for layer in layer_list]
    if include_embed:  # the residual stream before block 0 (embeddings), as layer -1
        layer_list = [-1, *layer_list]
        hook_names.insert(0, hook_name("resid_pre", 0))
    shape = (len(layer_list), n_rows, pos_index.shape[1])
    top_ids = torch.full((*shape, top_k), -1, dtype=torch.long)
    top_probs = torch.full((*shape, top_k), float("nan"))
    entropy = torch.full(shape, float("nan"))
    t_probs = torch.full(shape, float("nan")) if target_ids is not None else None
    t_ranks = torch.full(shape, -1, dtype=torch.long) if target_ids is not None else None
    mass = torch.full((*shape, len(cat_names)), float("nan")) if cat_names else None
    weight, bias = unembed_parts(model)

    outputs = {
        "top_ids": top_ids,
        "top_probs": top_probs,
        "entropy": entropy,
        "target_probs": t_probs,
        "target_ranks": t_ranks,
        "category_mass": mass,
    }
    deepest = max(layer_list)
    stop = None
    if stop_early:  # the deepest probe, and the hook points that would run after it
        index = max(i for i, x in enumerate(layer_list) if x == deepest)
        stop = (index, hook_points_after(model, deepest, same_block=site != "resid_post"))
    starts = range(0, n_rows, batch_size)
    all_valid = bool(valid.all())
    for start in tqdm(starts, desc="logit lens") if progress else starts:
        rows = slice(start, min(start + batch_size, n_rows))
        resid = _capture(
            model, b, rows, hook_names, positions, pos_index, valid, interventions, stop
        )
        if resid.shape[1] == 0:
            continue
        if translator is not None:
            resid = translator.translate(resid, layer_list)
        flat_t = None
        if target_ids is not None:
            per_pos = target_ids[rows, None].expand(-1, pos_index.shape[1])
            flat_t = per_pos[valid[rows]].repeat(len(layer_list)).to(device)
        out = decode_stack(
            model,
            resid.reshape(-1, resid.shape[-1]),
            top_k=top_k,
            target_ids=flat_t,
            category_matrix=cat_matrix,
            norm=norm,
            chunk_size=chunk_size,
            weight=weight,
            bias=bias,
        )
        where: Any = rows  # every slot of these rows is valid (e.g. "last"): plain slices
        if not all_valid:
            where = torch.zeros_like(valid)
            where[rows] = valid[rows]
        for key, dst in outputs.items():
            if dst is not None:  # [layers * n_valid, ...] -> the valid slots of these rows
                part = out[key].cpu()
                if all_valid:
                    dst[:, where] = part.reshape(dst[:, where].shape)
                else:
                    dst[:, where] = part.reshape(*resid.shape[:2], *part.shape[1:])

    input_ids = torch.where(valid, b.tokens.cpu().gather(1, pos_index.clamp(min=0)), -1)
    pos_out = torch.where(valid, pos_index, -1)
    seen = set(torch.cat([top_ids.flatten(), input_ids.flatten()]).unique().tolist())
    if target_ids is not None:
        seen |= set(target_ids.tolist())
    return LogitLensResult(
        layers=np.asarray(layer_list, dtype=np.int64),
        site=site,
        norm=norm,
        positions=pos_out.numpy(),
        valid=valid.numpy(),
        input_ids=input_ids.numpy(),
        top_ids=top_ids.numpy(),
        top_probs=top_probs.numpy(),
        entropy=entropy.numpy(),
        target_ids=None if target_ids is None else target_ids.cpu().numpy(),
        target_probs=None if t_probs is None else t_probs.numpy(),
        target_ranks=None if t_ranks is None else t_ranks.numpy(),
        category_names=cat_names,
        category_mass=None if mass is None else mass.numpy(),
        token_strings=token_strings(model, sorted(seen - {-1})),
        prompts=b.texts,
        model=_model_name(model),
        method="logit lens" if translator is None else "tuned lens",
    )


_TOKEN_TEXT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_strings(model: Any, ids: Sequence[int]) -> dict[int, str]:
    """Decoded text of each token id (``#id`` when the model has no tokenizer).

    Each id is decoded on its own (``tokenizer.decode([id])``), once per tokenizer: the texts
    are kept for later calls, so repeated lens calls do not pay the tokenizer again.

    Example:
        >>> import lens
        >>> token_strings(lens.load_model(lens.tiny_config("llama")), [3, 7])
        {3: '#3', 7: '#7'}
    """
    ids = [int(i) for i in ids]
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return {i: f"#{i}" for i in ids}
    try:
        known = _TOKEN_TEXT.setdefault(tok, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: no cache
        known = {}
    for i in ids:
        if i not in known:
            known[i] = tok.decode([i])
    return {i: known[i] for i in ids}


# ---------------------------------------------------------------------- helpers


def _capture(
    model: Any,
    b: Batch,
    rows: slice,
    hook_names: list[str],
    positions: Any,
    pos_index: Tensor,
    valid: Tensor,
    interventions: Sequence[Any],
    stop: tuple[int, list[Any]] | None,
) -> Tensor:
    """One forward on ``rows``; the residuals of the valid positions: [layers, n_valid, d].

    ``stop``: (index of the probe that may end the forward, the hook points after it)."""
    probe_pos = _probe_positions(positions, pos_index[rows])
    probes = [Probe(name, positions=probe_pos) for name in hook_names]
    stopper: StoppingProbe | None = None
    later: list[Any] = []
    if stop is not None:  # the deepest probe ends the forward once it has captured
        index, later = stop
        stopper = probes[index] = StoppingProbe(hook_names[index], positions=probe_pos)
    with apply(model, *interventions, probes=probes) as handle:
        forward_until(
            model, stopper, later, handle, b.tokens[rows], attention_mask=b.attention_mask[rows]
        )
    stack = torch.stack([_as_rows_pos(p.value, positions) for p in probes])
    keep = valid[rows]
    if bool(keep.all()):  # e.g. "last": no padding slot to drop
        return stack.reshape(len(probes), -1, stack.shape[-1])
    return stack[:, keep.to(stack.device)]


def _probe_positions(positions: Any, chunk_index: Tensor) -> Any:
    """What the probes select: "all", a per-row index tensor ("last" is given as the rows'
    last positions, already computed, so no probe recomputes them from the mask), or columns."""
    if isinstance(positions, str) and positions == "all":
        return positions
    if isinstance(positions, (str, Tensor)):
        return chunk_index[:, 0]
    return chunk_index[0].tolist()


def _as_rows_pos(value: Tensor, positions: Any) -> Tensor:
    """Probe capture -> [batch, position, d_model]."""
    if isinstance(positions, Tensor) or (isinstance(positions, str) and positions == "last"):
        return value[:, None]
    return value


def _model_name(model: Any) -> str:
    cfg = model.cfg
    name = getattr(cfg, "model_name", None) or getattr(cfg, "architecture", None) or "model"
    return f"{name} ({cfg.n_layers} layers, d_model {cfg.d_model}, vocab {cfg.d_vocab})"
