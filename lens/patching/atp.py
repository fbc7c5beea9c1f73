"""Attribution patching (AtP): the first-order estimate of every cell's patching effect,
``(source - target activation) . d metric / d activation`` at the target run, from one source
forward and one target forward + backward, whatever the number of cells."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from interventions.sites import hook_name, resolve_layers
from lens.hooks import GradProbe, Probe, apply
from lens.inputs import check_metric_gap, forward_bytes, rows_per_forward
from lens.patching.exact import (
    SITES,
    check_sites,
    metric_view,
    source_values,
    unembed_last_only,
)
from lens.patching.pairs import Direction, Metric, Token, check_metric_output, prepare
from lens.patching.result import PatchingResult, inputs_record


@dataclass(eq=False)
class TrackGrad:
    """Private intervention: make the token embedding a fresh leaf that requires grad, so that
    every later activation is differentiable without touching (or accumulating into)
    parameter gradients."""

    leaves: list[Tensor] = field(default_factory=list)

    def hooks(self, model: Any) -> list[tuple[str, Any]]:
        def leaf(act: Tensor, hook: Any) -> Tensor:
            out = act.detach().requires_grad_(True)
            self.leaves.append(out)
            return out

        return [("hook_embed", leaf)]


def attribution_patching(
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
    interventions: Sequence[Any] = (),
) -> PatchingResult:
    """Estimate :func:`activation_patching` for every cell from gradients (AtP).

    Same arguments and result type as :func:`~lens.patching.activation_patching` (no
    ``batch_size``: the cost is two forwards and one backward). ``raw`` holds the target
    run's metric plus each cell's linear estimate, so ``values(site)`` reads on the same scale
    (0 = corrupted run, 1 = clean run). Exact where the model is affine in the patched cell.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> res = attribution_patching(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, wrong=6)
        >>> tuple(res.values("z").shape), res.dims("z")
        ((3, 3, 4), ('layer', 'position', 'head'))
    """
    sites = check_sites(sites)
    layers = resolve_layers(model, layers)
    pairs = prepare(
        model, clean, corrupt, answer=answer, wrong=wrong, metric=metric, positions=positions
    )
    source_run, target = pairs.source_target(direction)
    n, seq = pairs.n_pairs, int(target.tokens.shape[1])
    kept = 3 * len(sites) * len(layers) * forward_bytes(model, seq, n) // 4  # source, act, grad
    graph = int(model.cfg.n_layers) * forward_bytes(model, seq, n)  # the backward's activations
    rows_per_forward(model, seq, rows=n, n_pairs=n, stored=kept + graph, what="attribution")
    source, source_m = source_values(
        model, source_run, sites, layers, interventions=interventions, metric=pairs.metric
    )
    keys = [(s, layer) for s in sites for layer in layers]
    acts = {k: Probe(hook_name(*k)) for k in keys}
    grads = {k: GradProbe(hook_name(*k)) for k in keys}
    track = TrackGrad()
    last_only = unembed_last_only(pairs.metric, target)  # no unembedding of other positions
    probes = [*acts.values(), *grads.values()]
    with (
        torch.enable_grad(),
        apply(model, track, *interventions, *last_only, probes=probes),
    ):
        logits = model(target.tokens, attention_mask=target.attention_mask)
        target_m = check_metric_output(pairs.metric(logits, metric_view(pairs.metric, target)), n)
        if not target_m.requires_grad:
            raise ValueError(
                "the metric is not differentiable in the logits (it returned a "
                "tensor without grad); attribution patching needs gradients"
            )
        inputs = [t for g in grads.values() for t in g.tensors]
        torch.autograd.grad(target_m.sum(), track.leaves + inputs, allow_unused=True)
        for g in grads.values():
            g.tensors.clear()
    rows = torch.arange(n)[None, :]
    raw = {}
    for site in sites:
        per_layer = []
        for layer in layers:
            key = (site, layer)
            if not grads[key].values:
                raise RuntimeError(f"no gradient reached {hook_name(*key)}")
            delta = (source[key] - acts[key].value) * grads[key].value
            effect = delta.sum(-1).double().cpu()  # [pair, pos] or [pair, pos, head]
            per_layer.append(effect[rows, pairs.slots.cpu()].transpose(0, 1))
        stacked = torch.stack(per_layer, dim=1)  # [pair, layer, slot(, head)]
        base = target_m.detach().double().cpu().view((-1,) + (1,) * (stacked.ndim - 1))
        raw[site] = base + stacked
    target_m = target_m.detach().double().cpu()
    source_m = source_m.double().cpu()
    clean_m, corrupt_m = (source_m, target_m) if direction == "denoise" else (target_m, source_m)
    check_metric_gap(clean_m, corrupt_m)
    meta = inputs_record(model, pairs, sites=sites, positions=positions, layers=layers)
    return PatchingResult(
        raw, clean_m, corrupt_m, layers, pairs.slot_labels, "attribution", direction, meta
    )
