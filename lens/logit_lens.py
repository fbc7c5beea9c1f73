"""The logit lens: decode every layer's residual stream through the final norm and unembedding.

One forward per chunk of prompts captures, with probes, each requested layer's residual at the
requested positions only. The captured vectors of all layers are stacked into one
``[layers x positions, d_model]`` matrix, normalized by the model's final norm with statistics
recomputed from each vector (never the final layer's cached scale, TransformerLens #1076), and
multiplied by ``W_U`` in chunks of ``chunk_size`` rows, so the full
``[layers, batch, positions, vocab]`` logits never exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interventions import _bridge
from interventions.base import Positions, check_layers, validate_positions
from lens.hooks import Probe, apply
from lens.logit_lens_result import LogitLensResult
from lens.readout import final_norm
from lens.tokens import Batch, PaddingSide, as_batch, first_token_id

ResidSite = Literal["resid_post", "resid_pre", "resid_mid"]
Norm = Literal["recompute", "none"]
SITES: tuple[ResidSite, ...] = ("resid_post", "resid_pre", "resid_mid")
NORMS: tuple[Norm, ...] = ("recompute", "none")


@torch.no_grad()
def logit_lens(
    model: Any,
    prompts_or_batch: Any,
    *,
    layers: str | Sequence[int] = "all",
    site: ResidSite = "resid_post",
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
    residuals (``layers x batch_size x positions x d_model`` floats) and, per decode chunk, at
    most two ``chunk_size x d_vocab`` float32 buffers plus one of bools: about
    ``9 * chunk_size * d_vocab`` bytes (113 MB for the default 256 rows and a 49k vocabulary),
    whatever the number of layers, prompts and positions (a non-float32 model adds one float32
    copy of ``W_U``). Outputs hold only top-k ids and
    probabilities, entropies, target statistics and category masses.

    Args:
        model: a TransformerBridge.
        prompts_or_batch: prompts (strings or token-id lists), a ``lens.tokens.Batch`` or a
            token tensor.
        layers: ``"all"`` or layer indices.
        site: ``"resid_post"`` (output of block l; its last layer gives the model's logits),
            ``"resid_pre"`` (input of block l) or ``"resid_mid"`` (after attention).
        positions: ``"last"`` (last real token of each row), ``"all"`` (every position of the
            padded row; padding is not decoded and marked ``valid=False``), integer indices
            into the padded row (negative count from its end; decoded in increasing order,
            duplicates dropped), or a 1-D tensor with one index per prompt.
        top_k: number of top tokens kept per layer and position.
        targets: one target per prompt (or one for all): token ids or strings. A string
            stands for its FIRST token (tokenized without special tokens; include the leading
            space for GPT-2-style tokenizers, e.g. ``" Paris"``; SentencePiece tokenizers add
            their own, so there use ``"Paris"``). Gives ``target_probs`` and ``target_ranks``.
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
            every position) is not computed, and hooks after that point (interventions or an
            outer ``lens.apply``'s probes on later sites) do not run. Residuals at the decoded
            sites are unaffected (the forward is causal in depth). False runs the whole model.
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
    layer_list = _check_args(model, layers, site, norm, top_k, batch_size, chunk_size)
    validate_positions(positions)
    if translator is not None:
        translator.check(model, layer_list, site)
    b = as_batch(model, prompts_or_batch, padding_side=padding_side)
    n_rows, seq = b.tokens.shape
    device = b.tokens.device
    pos_index, valid = _position_index(positions, b)
    target_ids = _target_ids(model, targets, n_rows)
    cat_names, cat_matrix = _category_matrix(model, categories, device)

    shape = (len(layer_list), n_rows, pos_index.shape[1])
    top_ids = torch.full((*shape, top_k), -1, dtype=torch.long)
    top_probs = torch.full((*shape, top_k), float("nan"))
    entropy = torch.full(shape, float("nan"))
    t_probs = torch.full(shape, float("nan")) if target_ids is not None else None
    t_ranks = torch.full(shape, -1, dtype=torch.long) if target_ids is not None else None
    mass = torch.full((*shape, len(cat_names)), float("nan")) if cat_names else None
    weight, bias = _unembed_parts(model)

    outputs = {
        "top_ids": top_ids,
        "top_probs": top_probs,
        "entropy": entropy,
        "target_probs": t_probs,
        "target_ranks": t_ranks,
        "category_mass": mass,
    }
    hook_names = [f"blocks.{layer}.hook_{site}" for layer in layer_list]
    deepest = max(layer_list)
    stop_at = max(i for i, x in enumerate(layer_list) if x == deepest) if stop_early else None
    starts = range(0, n_rows, batch_size)
    for start in tqdm(starts, desc="logit lens", disable=not progress):
        rows = slice(start, min(start + batch_size, n_rows))
        resid = _capture(
            model, b, rows, hook_names, positions, pos_index, valid, interventions, stop_at
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
        where = torch.zeros_like(valid)
        where[rows] = valid[rows]
        for key, dst in outputs.items():
            if dst is not None:  # [layers * n_valid, ...] -> the valid slots of these rows
                dst[:, where] = out[key].reshape(*resid.shape[:2], *out[key].shape[1:]).cpu()

    input_ids = torch.where(valid, b.tokens.cpu().gather(1, pos_index.clamp(min=0)), -1)
    pos_out = torch.where(valid, pos_index, -1)
    seen = {int(i) for i in torch.cat([top_ids.flatten(), input_ids.flatten()]).unique()}
    if target_ids is not None:
        seen |= {int(i) for i in target_ids}
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
    )


@torch.no_grad()
def decode_stack(
    model: Any,
    h: Float[Tensor, "rows d_model"],
    *,
    top_k: int = 10,
    target_ids: Int[Tensor, " rows"] | None = None,
    category_matrix: Float[Tensor, "d_vocab category"] | None = None,
    norm: str = "recompute",
    chunk_size: int = 256,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
) -> dict[str, Tensor]:
    """Decode a stack of residual vectors in chunks of ``chunk_size`` rows (float32).

    Extra memory: at most two ``chunk_size x d_vocab`` float32 buffers and one bool buffer
    of the same size at a time.

    Returns:
        ``top_ids``/``top_probs`` ``[rows, k]``, ``entropy`` ``[rows]`` (nats), and when asked
        ``target_probs``/``target_ranks`` ``[rows]`` and ``category_mass`` ``[rows, category]``.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> from lens.logit_lens import decode_stack
        >>> out = decode_stack(model, torch.randn(4, 64), top_k=2)
        >>> out["top_ids"].shape, out["entropy"].shape
        (torch.Size([4, 2]), torch.Size([4]))
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if weight is None:
        weight, bias = _unembed_parts(model)
    h = h.to(weight.dtype)  # float32 throughout, also for bf16/fp16 models
    x = final_norm(model, h) if norm == "recompute" else h
    cap = getattr(model.cfg, "output_logits_soft_cap", -1.0)
    parts: dict[str, list[Tensor]] = {"top_ids": [], "top_probs": [], "entropy": []}
    if target_ids is not None:
        parts |= {"target_probs": [], "target_ranks": []}
    if category_matrix is not None:
        parts["category_mass"] = []
    for start in range(0, x.shape[0], chunk_size):
        logits = x[start : start + chunk_size] @ weight.T  # buffer 1: [chunk, vocab]
        if bias is not None:
            logits.add_(bias)
        if cap is not None and cap > 0:
            logits.div_(cap).tanh_().mul_(cap)
        values, ids = logits.topk(top_k, dim=-1)
        probs = torch.softmax(logits, dim=-1)  # buffer 2: one fused pass over the vocab
        # softmax's own float32 normaliser is off by up to ~1e-5 on large vocabularies;
        # a cascade sum corrects every value read from ``probs`` (p = probs / total)
        total = probs.sum(-1)
        top_p = probs.gather(1, ids) / total[:, None]
        lse = values[:, 0] - top_p[:, 0].log()  # log-normaliser: p_top1 = exp(z_top1 - lse)
        parts["top_ids"].append(ids)
        parts["top_probs"].append(top_p)
        if target_ids is not None:
            t = target_ids[start : start + chunk_size, None].to(logits.device)
            parts["target_probs"].append(probs.gather(1, t)[:, 0] / total)
            parts["target_ranks"].append((logits > logits.gather(1, t)).sum(-1))  # bools
        if category_matrix is not None:
            parts["category_mass"].append((probs @ category_matrix) / total[:, None])
        # entropy H = lse - sum_v p_v z_v (logits overwritten in place: they are done)
        parts["entropy"].append(lse - logits.mul_(probs).sum(-1) / total)
        del logits, probs
    return {k: torch.cat(v) for k, v in parts.items()}


def token_strings(model: Any, ids: Sequence[int]) -> dict[int, str]:
    """Decoded text of each token id (``#id`` when the model has no tokenizer)."""
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return {int(i): f"#{int(i)}" for i in ids}
    return {int(i): tok.decode([int(i)]) for i in ids}


# ---------------------------------------------------------------------- helpers


def _check_args(
    model: Any,
    layers: Any,
    site: ResidSite,
    norm: str,
    top_k: int,
    batch_size: int,
    chunk_size: int,
) -> list[int]:
    if site not in SITES:
        raise ValueError(f"site must be one of {SITES}, got {site!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    vocab = int(model.cfg.d_vocab)
    if not isinstance(top_k, int) or not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be an int in 1..{vocab} (the vocabulary), got {top_k!r}")
    if batch_size < 1 or chunk_size < 1:
        raise ValueError("batch_size and chunk_size must be >= 1")
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"layers must be 'all' or a list of ints, got {layers!r}")
        return list(range(model.cfg.n_layers))
    layer_list = [layers] if isinstance(layers, int) else list(layers)
    if not layer_list or not all(isinstance(x, int) for x in layer_list):
        raise ValueError(f"layers must be 'all' or a non-empty list of ints, got {layers!r}")
    check_layers(layer_list, model, "logit_lens")
    return layer_list


def _position_index(positions: Any, b: Batch) -> tuple[Tensor, Tensor]:
    """Per row, the padded-row index of every decoded position, and whether it is real."""
    mask = b.attention_mask.cpu().bool()
    n_rows, seq = mask.shape
    if isinstance(positions, str) and positions == "last":
        index = b.last_positions.cpu()[:, None]
    elif isinstance(positions, str):  # all
        index = torch.arange(seq).expand(n_rows, seq)
    elif isinstance(positions, Tensor):
        if positions.dtype == torch.bool or positions.ndim != 1 or len(positions) != n_rows:
            raise ValueError(
                "a positions tensor must be 1-D with one integer index per prompt "
                f"({n_rows}); for shared indices pass a list of ints"
            )
        index = positions.cpu().long()[:, None]
    else:
        given = [positions] if isinstance(positions, int) else list(positions)
        bad = [p for p in given if not -seq <= p < seq]
        if bad:
            raise IndexError(f"positions {bad} out of range for sequence length {seq}")
        shared = sorted({p % seq for p in given})  # increasing order, duplicates dropped
        index = torch.tensor(shared).expand(n_rows, -1)
    outside = index[(index < 0) | (index >= seq)]
    if outside.numel():
        raise IndexError(f"positions {outside.unique().tolist()} out of range for length {seq}")
    index = index.contiguous()
    return index, mask.gather(1, index)


class _StopForward(Exception):
    """Raised by the deepest probe: nothing after it is needed."""


class _StoppingProbe(Probe):
    """A probe that ends the forward right after its capture."""

    def hook(self, model: Any) -> Any:
        capture = super().hook(model)

        def capture_then_stop(act: Tensor, hook: Any) -> None:
            capture(act, hook)
            raise _StopForward

        return capture_then_stop


def _capture(
    model: Any,
    b: Batch,
    rows: slice,
    hook_names: list[str],
    positions: Any,
    pos_index: Tensor,
    valid: Tensor,
    interventions: Sequence[Any],
    stop_at: int | None,
) -> Tensor:
    """One forward on ``rows``; the residuals of the valid positions: [layers, n_valid, d]."""
    probe_pos = _probe_positions(positions, pos_index[rows])
    probes = [Probe(name, positions=probe_pos) for name in hook_names]
    if stop_at is not None:  # the deepest probe ends the forward once it has captured
        probes[stop_at] = _StoppingProbe(hook_names[stop_at], positions=probe_pos)
    with apply(model, *interventions, probes=probes):
        try:
            model(b.tokens[rows], attention_mask=b.attention_mask[rows])
        except _StopForward:
            pass
    keep = valid[rows].to(b.tokens.device)
    return torch.stack([_as_rows_pos(p.value, positions)[keep] for p in probes])


def _probe_positions(positions: Any, chunk_index: Tensor) -> Any:
    if isinstance(positions, str):
        return positions
    if isinstance(positions, Tensor):
        return chunk_index[:, 0]
    return chunk_index[0].tolist()


def _as_rows_pos(value: Tensor, positions: Any) -> Tensor:
    """Probe capture -> [batch, position, d_model]."""
    if isinstance(positions, Tensor) or (isinstance(positions, str) and positions == "last"):
        return value[:, None]
    return value


def _target_ids(model: Any, targets: Any, n_rows: int) -> Tensor | None:
    if targets is None:
        return None
    if isinstance(targets, (str, int)):
        targets = [targets] * n_rows
    if isinstance(targets, Tensor):
        targets = targets.tolist()
    targets = list(targets)
    if len(targets) != n_rows:
        raise ValueError(f"got {len(targets)} targets for {n_rows} prompts (or pass one)")
    ids = [_first_token(model, t) for t in targets]
    vocab = int(model.cfg.d_vocab)
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise ValueError(f"target ids {bad} out of range for vocabulary size {vocab}")
    return torch.tensor(ids, dtype=torch.long)


def _first_token(model: Any, target: Any) -> int:
    if isinstance(target, str):
        return first_token_id(model, target)
    if isinstance(target, (list, tuple)):
        if not target:
            raise ValueError("an empty target")
        return _first_token(model, target[0])
    if isinstance(target, (bool, float)) or not isinstance(target, (int, np.integer)):
        raise ValueError(f"targets must be token ids or strings, got {target!r}")
    return int(target)


def _category_matrix(
    model: Any, categories: Mapping[str, Any] | None, device: Any
) -> tuple[list[str], Tensor | None]:
    if not categories:
        return [], None
    vocab = int(model.cfg.d_vocab)
    names = list(categories)
    matrix = torch.zeros(vocab, len(names))
    for j, name in enumerate(names):
        ids = sorted({int(i) for i in categories[name]})
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise ValueError(f"category {name!r}: ids {bad[:5]} out of range for vocab {vocab}")
        matrix[ids, j] = 1.0
    return names, matrix.to(device)


def _unembed_parts(model: Any) -> tuple[Tensor, Tensor | None]:
    """W_U as [vocab, d_model] and b_U, in float32 (converted once when the model is not)."""
    head = _bridge.unembed_module(model)
    weight = head.weight.detach()
    bias = getattr(head, "bias", None)
    bias = None if bias is None else bias.detach().float()
    return weight.float(), bias


def _model_name(model: Any) -> str:
    cfg = model.cfg
    name = getattr(cfg, "model_name", None) or getattr(cfg, "architecture", None) or "model"
    return f"{name} ({cfg.n_layers} layers, d_model {cfg.d_model}, vocab {cfg.d_vocab})"
