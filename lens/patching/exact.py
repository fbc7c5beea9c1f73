"""Exact activation patching: one patched cell per copy of the target prompts, many copies
per forward (copy-major batches), so a sweep costs cells / copies forwards instead of cells."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interventions import bridge as hb
from interventions.base import forward_context
from interventions.heads import PATCH_SITES
from interventions.sites import check_site, hook_name, resolve_layers
from lens.hooks import Probe, apply
from lens.inputs import check_metric_gap, forward_bytes, rows_per_forward
from lens.patching.pairs import (
    Direction,
    Metric,
    Pairs,
    Token,
    check_metric_output,
    prepare,
    repeat,
)
from lens.patching.prefix import TargetCache, first_columns, forward_from, rows_per_layer
from lens.patching.result import PatchingResult, inputs_record
from lens.tokens import Batch

SITES = ("resid_pre", "attn_out", "mlp_out", "z")
ALL_SITES = PATCH_SITES  # resid_pre, resid_post, attn_out, mlp_out, z (per head)


def check_sites(sites: Sequence[str]) -> list[str]:
    if not isinstance(sites, (str, Sequence)):
        raise TypeError(
            f"sites must be a site name or a list of them from {list(ALL_SITES)}, got {sites!r}"
        )
    sites = [sites] if isinstance(sites, str) else list(sites)
    if not sites:
        raise ValueError(f"sites is empty; patching knows {list(ALL_SITES)}")
    return [check_site(s, ALL_SITES, "patching site") for s in sites]


@overload
def source_values(
    model: Any,
    run: Batch,
    sites: list[str],
    layers: list[int],
    *,
    interventions: Sequence[Any],
    metric: None = None,
) -> tuple[dict[tuple[str, int], Tensor], None]: ...
@overload
def source_values(
    model: Any,
    run: Batch,
    sites: list[str],
    layers: list[int],
    *,
    interventions: Sequence[Any],
    metric: Metric,
) -> tuple[dict[tuple[str, int], Tensor], Tensor]: ...
def source_values(
    model: Any,
    run: Batch,
    sites: list[str],
    layers: list[int],
    *,
    interventions: Sequence[Any],
    metric: Metric | None = None,
) -> tuple[dict[tuple[str, int], Tensor], Tensor | None]:
    """Every (site, layer) activation of one run, and ``metric`` of it (``[rows]``)."""
    probes = {(s, layer): Probe(hook_name(s, layer)) for s in sites for layer in layers}
    last = unembed_last_only(metric, run)
    with (
        torch.no_grad(),
        apply(model, *interventions, *last, probes=list(probes.values())),
    ):
        logits = model(run.tokens, attention_mask=run.attention_mask)
        value = None
        if metric is not None:
            value = check_metric_output(metric(logits, metric_view(metric, run)), len(run))
    return {key: p.value for key, p in probes.items()}, value


def unembed_last_only(metric: Any, run: Batch) -> list[Any]:
    """``[LastTokenLogits]`` when ``metric`` reads only the last token, else ``[]``."""
    if getattr(metric, "last_token_only", False):
        return [LastTokenLogits(run.last_positions)]
    return []


def metric_view(metric: Any, run: Batch) -> Batch:
    """The batch a metric sees: one position per row when only the last token was unembedded."""
    if not getattr(metric, "last_token_only", False):
        return run
    ones = torch.ones_like(run.tokens[:, :1])
    return Batch(run.tokens[:, :1], ones, run.padding_side)


@dataclass(eq=False)
class CellPatch:
    """Private intervention: in a copy-major batch, write source values into each copy's cells.

    ``cells`` holds, per copy, the (site, layer, slot, head) cells it restores (head -1 for
    whole-vector sites); most copies restore one cell, a window restores several."""

    cells: list[list[tuple[str, int, int, int]]]
    source: dict[tuple[str, int], Tensor]
    slots: Tensor
    n_pairs: int

    def hooks(self, model: Any) -> list[tuple[str, Any]]:
        groups: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
        for copy, group in enumerate(self.cells):
            for site, layer, slot, head in group:
                groups.setdefault((site, layer), []).append((copy, slot, head))
        return [(hook_name(*key), self._hook(model, key, items)) for key, items in groups.items()]

    def _hook(self, model: Any, key: tuple[str, int], items: list[tuple[int, int, int]]) -> Any:
        n = self.n_pairs
        pair = torch.arange(n).repeat(len(items))
        copies = torch.tensor([c for c, _, _ in items]).repeat_interleave(n)
        rows = copies * n + pair
        pos = torch.cat([self.slots[s] for _, s, _ in items])
        heads = torch.tensor([h for _, _, h in items]).repeat_interleave(n)
        src = self.source[key]

        def hook(act: Tensor, hook: Any) -> Tensor:
            out = act.clone()
            dev = act.device
            r, p, q = rows.to(dev), pos.to(dev), pair.to(dev)
            at = p - forward_context(model).past  # a forward that starts after a cached prefix
            if key[0] == "z":
                h = heads.to(dev)
                out[r, at, h] = src[q, p, h].to(dev, act.dtype)
            else:
                out[r, at] = src[q, p].to(dev, act.dtype)
            return out

        return hook


@dataclass(eq=False)
class LastTokenLogits:
    """Private intervention: unembed only each row's last real token, for metrics that read
    nothing else (``metric.last_token_only = True``, e.g. :class:`LogitDiff`), saving the
    unembedding of every other position."""

    last: Tensor

    def hooks(self, model: Any) -> list[tuple[str, Any]]:
        def gather(act: Tensor, hook: Any) -> Tensor:
            rows = torch.arange(act.shape[0], device=act.device)
            last = self.last.to(act.device) - forward_context(model).past
            return act[rows, last][:, None]

        return [(hb.UNEMBED_INPUT_HOOK, gather)]


@dataclass(eq=False)
class GrowCopies:
    """Private intervention: each copy joins the batch at its first patched layer. Before it,
    every copy equals the unpatched target, so the batch carries one target row (last) and,
    at each start layer, appends that row once per copy starting there (copies sorted by
    start). Only for one unpadded pair (its masks broadcast over the copies)."""

    starts: list[int]

    def hooks(self, model: Any) -> list[tuple[str, Any]]:
        counts: dict[int, int] = {}
        for layer in self.starts:
            counts[layer] = counts.get(layer, 0) + 1
        last = max(counts)

        def grow(layer: int) -> Any:
            add, keep = counts[layer], layer != last

            def hook(act: Tensor, hook: Any) -> Tensor:
                target = act[-1:]
                parts = [act[:-1], target.expand(add, *act.shape[1:])]
                return torch.cat(parts + [target] if keep else parts)

            return hook

        return [(hook_name("resid_pre", layer), grow(layer)) for layer in sorted(counts)]


def run_cells(
    model: Any,
    pairs: Pairs,
    cells: list[list[tuple[str, int, int, int]]],
    source: dict[tuple[str, int], Tensor],
    target: Any,
    *,
    batch_size: int,
    interventions: Sequence[Any],
    progress: bool,
    late_copies: bool = True,
    reuse_prefix: bool = True,
) -> Tensor:
    """The metric of every copy's patched run, ``[copies, pairs]`` (``interventions`` act on
    the patched runs only). With ``late_copies`` and an unpadded target (one pair), each copy
    joins the batch at its first patched layer: the layers before it run once for all copies
    (:class:`GrowCopies`); ``interventions`` must then accept a batch that grows there. With
    ``reuse_prefix`` (where exact, see :mod:`lens.patching.prefix`) copies are sorted by their
    first patched column and each forward starts there, on the target run's keys/values."""
    n = pairs.n_pairs
    seq = int(target.tokens.shape[1])  # copies per forward, kept under the memory bound
    copies = rows_per_forward(model, seq, rows=max(batch_size, n), n_pairs=n) // n
    out = torch.empty(len(cells), n, dtype=torch.float64)
    cached = TargetCache.build(model, target, pairs.metric, interventions) if reuse_prefix else None
    index = list(range(len(cells)))
    firsts_col: list[int] = []
    joins: list[int] = []
    if cached is not None:  # copies with the longest shared prefix first
        firsts_col = first_columns(cells, pairs.slots)
        index.sort(key=lambda i: -firsts_col[i])
    chunks = range(0, len(cells), copies)
    # one unpadded pair: its per-batch tensors (mask, rotary angles) broadcast over the copies
    late = late_copies and n == 1 and bool(target.attention_mask.bool().all())
    for start in tqdm(chunks, desc="patching", disable=not progress or len(chunks) < 4):
        order = index[start : start + copies]
        chunk = [cells[i] for i in order]
        if late:  # copies sorted by the layer where they join the batch
            firsts = [min(layer for _, layer, _, _ in group) for group in chunk]
            order = [order[i] for i in sorted(range(len(chunk)), key=lambda i: firsts[i])]
            chunk = [cells[i] for i in order]
            joins = sorted(firsts)
            grow, tokens, mask = [GrowCopies(joins)], target.tokens, None
        big = repeat(target, len(chunk))
        if not late:
            grow, tokens, mask = [], big.tokens, big.attention_mask
        patch = CellPatch(chunk, source, pairs.slots, n)
        last_only = unembed_last_only(pairs.metric, big)
        begin = min(firsts_col[i] for i in order) if cached is not None else 0
        with (
            torch.no_grad(),
            apply(model, *interventions, *grow, patch, *last_only),
        ):
            if cached is not None and begin > 0:
                per_layer = rows_per_layer(joins, int(model.cfg.n_layers)) if late else None
                cache = cached.for_copies(begin, len(chunk), per_layer)
                logits = forward_from(model, tokens, mask, cache, begin)
            else:
                logits = model(tokens, attention_mask=mask)
            value = check_metric_output(
                pairs.metric(logits, metric_view(pairs.metric, big)), len(big)
            )
        out[torch.tensor(order)] = value.detach().double().cpu().view(len(chunk), n)
    return out


def activation_patching(
    model: Any,
    clean: Any,
    corrupt: Any,
    *,
    answer: Token | Sequence[Token] | None = None,
    wrong: Token | Sequence[Token] | None = None,
    metric: Metric | None = None,
    sites: Sequence[str] = SITES,
    positions: Any = "all",
    layers: Any = "all",
    direction: Direction = "denoise",
    batch_size: int = 64,
    interventions: Sequence[Any] = (),
    reuse_prefix: bool = True,
    progress: bool = False,
) -> PatchingResult:
    """Patch every (site, layer, position[, head]) cell from one run into the other.

    ``denoise`` runs the corrupted prompts with one cell taken from the clean run; ``noise``
    runs the clean prompts with one cell from the corrupted run. Cells are batched: each copy
    of the target prompts in a forward carries a different patched cell.

    Args:
        model: a TransformerBridge.
        clean, corrupt: prompts (text, token-id lists or a ``lens.tokens`` Batch), one pair per
            row; each pair must tokenize to the same length (rows are left-padded).
        answer, wrong: the default metric's tokens (one for all pairs, or one per pair): ids,
            ``"id:N"`` or text of one token by :func:`lens.tokens.token_id`'s rule (text of
            several tokens, or one the tokenizer does not know, is refused).
        metric: ``metric(logits, batch) -> [batch]`` instead of the logit difference at the
            last real token; batches are copy-major (row r is pair r % n_pairs).
        sites: any of ``"resid_pre"``, ``"resid_post"``, ``"attn_out"``, ``"mlp_out"``,
            ``"z"`` (per head: a head's ``attn.hook_z`` slice); see :mod:`interventions.sites`.
        positions: ``"all"`` (every padded position), ``"last"`` (each row's last real token)
            or integer indices into the padded sequence.
        layers: ``"all"``, one layer or a list (negative: counted from the end).
        batch_size: rows per forward (copies x pairs); lowered when the estimated memory
            would pass ``lens.inputs.MEMORY_BOUND_BYTES`` (refused when one copy would).
        interventions: applied to every run (e.g. patching under an ablation).
        reuse_prefix: start each forward at its copies' first patched column, reading the
            target run's keys/values before it (where exact: :mod:`lens.patching.prefix`).

    Identical clean and corrupt prompts, ``answer == wrong`` and a clean metric equal to the
    corrupted one are refused (:class:`lens.inputs.InputError`): they give no finite effect.

    Returns:
        A :class:`PatchingResult` (``values(site)``: 0 = corrupted run, 1 = clean run).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = activation_patching(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, wrong=6,
        ...                           sites=["resid_pre"], progress=False)
        >>> tuple(res.values("resid_pre").shape), res.dims("resid_pre")
        ((3, 3), ('layer', 'position'))
    """
    sites = check_sites(sites)
    layers = resolve_layers(model, layers)
    pairs = prepare(
        model, clean, corrupt, answer=answer, wrong=wrong, metric=metric, positions=positions
    )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    source_run, target = pairs.source_target(direction)
    metric = pairs.metric
    n, seq = pairs.n_pairs, int(target.tokens.shape[1])
    stored = len(sites) * len(layers) * forward_bytes(model, seq, n) // 4  # kept activations
    batch_size = rows_per_forward(model, seq, rows=batch_size, n_pairs=n, stored=stored)
    source, source_m = source_values(
        model, source_run, sites, layers, interventions=interventions, metric=metric
    )
    _, target_m = source_values(model, target, [], [], interventions=interventions, metric=metric)
    source_m, target_m = source_m.double().cpu(), target_m.double().cpu()
    clean_m, corrupt_m = (source_m, target_m) if direction == "denoise" else (target_m, source_m)
    check_metric_gap(clean_m, corrupt_m)
    n_slots, n_heads = pairs.slots.shape[0], hb.n_heads(model)
    cells = [
        (site, layer, slot, head)
        for site in sites
        for layer in layers
        for slot in range(n_slots)
        for head in (range(n_heads) if site == "z" else [-1])
    ]
    flat = run_cells(
        model,
        pairs,
        [[c] for c in cells],
        source,
        target,
        batch_size=batch_size,
        interventions=interventions,
        progress=progress,
        reuse_prefix=reuse_prefix,
    )
    raw, start = {}, 0
    for site in sites:
        shape = (len(layers), n_slots) + ((n_heads,) if site == "z" else ())
        size = len(layers) * n_slots * (n_heads if site == "z" else 1)
        raw[site] = flat[start : start + size].T.reshape(n, *shape)
        start += size
    meta = inputs_record(model, pairs, sites=sites, positions=positions, layers=layers)
    return PatchingResult(
        raw, clean_m, corrupt_m, layers, pairs.slot_labels, "exact", direction, meta
    )
