"""The patchscope driver: one source forward reads every source layer; the target prompt's
unpatched prefix runs once (KV cache) and each batch of (source layer, target layer) pairs
runs only the columns from the patched position on, one row per pair."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interventions.base import HookPair, forward_context
from interventions.sites import check_site, hook_name, resolve_layers
from lens.generate import cache_problem, cache_routing, generate_tokens
from lens.generate.cache import forward_with_cache, prefix_cache, repeat_cache
from lens.hooks import Probe, apply
from lens.patchscope.result import PatchscopeResult
from lens.patchscope.targets import PresetName, Target, preset
from lens.tokens import Batch, as_batch

PatchSite = Literal["resid_pre", "resid_post"]


class RowPatch:
    """Write one vector per row into ``site`` of each row's own layer, at one absolute
    column (``interventions.base.Positions`` columns; a cached forward offsets them).

    Args:
        site: ``"resid_pre"`` or ``"resid_post"``.
        layers: the layer written in each row. ``[row]``
        vectors: the vector written in each row. ``[row, d_model]``
        column: the column written (>= 0).
    """

    def __init__(
        self, site: str, layers: Sequence[int], vectors: Float[Tensor, "row d"], column: int
    ) -> None:
        self.site, self.column = site, column
        self.rows: dict[int, tuple[Tensor, Tensor]] = {}
        for layer in sorted(set(layers)):
            index = torch.tensor([i for i, x in enumerate(layers) if x == layer])
            self.rows[layer] = (index, vectors[index])

    def hooks(self, model: Any) -> list[HookPair]:
        return [(hook_name(self.site, layer), self._hook(model, layer)) for layer in self.rows]

    def _hook(self, model: Any, layer: int) -> Any:
        rows, vectors = self.rows[layer]

        def write(act: Tensor, hook: Any) -> Tensor:
            local = self.column - forward_context(model).past
            if not 0 <= local < act.shape[1]:
                return act
            out = act.clone()
            out[rows.to(act.device), local] = vectors.to(act.device, act.dtype)
            return out

        return write


@torch.no_grad()
def patchscope(
    model: Any,
    source: str | Sequence[int],
    *,
    target: Target | PresetName = "identity",
    source_layers: Any = "all",
    target_layers: Any = None,
    source_position: int | Literal["last"] = "last",
    site: PatchSite = "resid_post",
    top_k: int = 10,
    batch_size: int = 64,
    use_cache: bool | None = None,
    progress: bool = False,
) -> PatchscopeResult:
    """Decode hidden states of ``source`` with the model itself (Ghandeharioun et al. 2024):
    the state at (source layer, ``source_position``) replaces the state at (target layer,
    target position) of the target prompt; read the patched run's next token (and generate
    when the target asks for it).

    Args:
        source: the source prompt (text or ids; BOS added as for any lens prompt).
        target: a :class:`Target`, or a preset name (``"identity"``, ``"future"``); see
            :func:`lens.patchscope.attribute` for attribute extraction.
        source_layers: layers read in the source (``"all"``, an int or a list).
        target_layers: None: each source layer writes into the same layer; else every source
            layer writes into every one of these (all pairs).
        source_position: column of the source prompt read (``"last"``, or an int, negative
            from its end).
        site: where the state is read and written (``"resid_post"``: the output of block l).
        top_k: next tokens kept per pair.
        batch_size: pairs per forward.
        use_cache: run the target's unpatched prefix once and reuse its keys/values
            (None: when the model's cache is correct; False: never).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = lens.patchscope.patchscope(model, [1, 5, 9], target=Target((1, 7, 7, 3)),
        ...                                  top_k=3, use_cache=False)
        >>> res.top_ids.shape, res.target_layers.tolist()
        ((3, 3), [0, 1, 2])
    """
    spec = preset(target) if isinstance(target, str) else target
    if not isinstance(spec, Target):
        raise TypeError(f"target must be a Target or a preset name, got {type(target).__name__}")
    site = check_site(site, ("resid_pre", "resid_post"))
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    src_layers = resolve_layers(model, source_layers, what="source_layers")
    if target_layers is None:
        pairs = [(s, s) for s in src_layers]
    else:
        tgt = resolve_layers(model, target_layers, what="target_layers")
        pairs = [(s, t) for s in src_layers for t in tgt]
    src = as_batch(model, [list(source) if not isinstance(source, str) else source])
    src_ids = src.tokens[0].tolist()
    column = _source_column(source_position, len(src_ids))
    tgt_ids = as_batch(
        model, [list(spec.prompt) if isinstance(spec.prompt, tuple) else spec.prompt]
    )
    tokens = tgt_ids.tokens
    t_col = spec.locate(model, tokens[0].tolist())
    cached = use_cache is not False and cache_problem(model) is None and t_col > 0

    probes = [Probe(hook_name(site, layer), positions=[column]) for layer in src_layers]
    with apply(model, probes=probes):
        model(src.tokens, attention_mask=src.attention_mask)
    states = {layer: p.value[0, 0] for layer, p in zip(src_layers, probes)}

    prefix = (
        prefix_cache(model, tokens[:, :t_col], tgt_ids.attention_mask[:, :t_col])
        if cached
        else None
    )
    top_ids, top_probs, entropy, generated = [], [], [], []
    starts = range(0, len(pairs), batch_size)
    for start in tqdm(starts, desc="patchscope", disable=not progress):
        chunk = pairs[start : start + batch_size]
        vectors = torch.stack([states[s] for s, _ in chunk])
        patch = RowPatch(site, [t for _, t in chunk], vectors, t_col)
        logits = _patched_logits(model, tokens, patch, len(chunk), t_col, prefix)
        probs = logits.float().softmax(-1)
        values, ids = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        top_ids.append(ids.cpu())
        top_probs.append(values.cpu())
        entropy.append(-(probs * probs.clamp_min(1e-30).log()).sum(-1).cpu())
        if spec.max_new_tokens:
            n = len(chunk)
            rows = Batch(tokens.expand(n, -1), torch.ones_like(tokens).expand(n, -1), "left")
            out = generate_tokens(
                model, rows, max_new_tokens=spec.max_new_tokens, interventions=[patch],
                stop_at_eos=False, use_cache=None if use_cache is not False else False,
            )  # fmt: skip
            generated.append(out.tokens)
    return _result(model, spec, site, pairs, src_ids, column, tokens[0].tolist(), t_col,
                   source, top_ids, top_probs, entropy, generated)  # fmt: skip


def _source_column(position: int | str, n: int) -> int:
    if position == "last":
        return n - 1
    if isinstance(position, bool) or not isinstance(position, int):
        raise TypeError(f"source_position must be 'last' or an int, got {position!r}")
    if not -n <= position < n:
        raise ValueError(
            f"source position {position} is beyond the source prompt ({n} tokens: columns "
            f"0..{n - 1}, or -{n}..-1 from its end)"
        )
    return position % n


def _patched_logits(
    model: Any, tokens: Tensor, patch: RowPatch, n: int, t_col: int, prefix: Any
) -> Tensor:
    """Last-position logits of ``n`` copies of the target, each patched by its own row."""
    if prefix is None:
        rows = tokens.expand(n, -1)
        with apply(model, patch):
            return model(rows, attention_mask=torch.ones_like(rows))[:, -1]
    cache = repeat_cache(prefix, n)
    rows = tokens[:, t_col:].expand(n, -1)
    with apply(model, patch), cache_routing(model):
        logits, _ = forward_with_cache(model, rows, torch.ones_like(tokens).expand(n, -1), cache)
    return logits[:, -1]


def _result(
    model: Any,
    spec: Target,
    site: str,
    pairs: list[tuple[int, int]],
    src_ids: list[int],
    column: int,
    tgt_ids: list[int],
    t_col: int,
    source: Any,
    top_ids: list[Tensor],
    top_probs: list[Tensor],
    entropy: list[Tensor],
    generated: list[Tensor],
) -> PatchscopeResult:
    ids = torch.cat(top_ids).numpy()
    gen = torch.cat(generated).numpy() if generated else None
    tok = getattr(model, "tokenizer", None)
    seen = {int(x) for x in ids.flatten()} | {src_ids[column]}
    if gen is not None:
        seen |= {int(x) for x in gen.flatten()}
    strings = {t: tok.decode([t]) if tok is not None else f"#{t}" for t in sorted(seen)}
    texts = None
    if gen is not None and tok is not None:
        texts = [tok.decode(row, skip_special_tokens=True) for row in gen.tolist()]
    cfg = model.cfg
    name = getattr(cfg, "model_name", None) or getattr(cfg, "architecture", None) or "model"
    return PatchscopeResult(
        source_layers=np.array([s for s, _ in pairs]),
        target_layers=np.array([t for _, t in pairs]),
        top_ids=ids,
        top_probs=torch.cat(top_probs).numpy(),
        entropy=torch.cat(entropy).numpy(),
        site=site,
        source_prompt=source if isinstance(source, str) else list(source),
        source_position=column,
        source_token=src_ids[column],
        target_prompt=spec.prompt if isinstance(spec.prompt, str) else list(spec.prompt),
        target_position=t_col,
        target_name=spec.name,
        generated_ids=gen,
        texts=texts,
        token_strings=strings,
        model=f"{name} ({cfg.n_layers} layers, d_model {cfg.d_model})",
    )
