"""Edge attribution patching: EAP, EAP-IG and exact scores for every edge of the residual graph.

EAP scores the edge ``w -> r`` by ``(w_clean - w_corrupt) . d metric / d (r's input)`` with the
gradient taken at the corrupted run. EAP-IG averages that gradient over ``steps`` points at
``alpha = 0, 1/steps, ..., (steps - 1)/steps`` between the corrupted (0) and clean (1) runs (a
left Riemann sum starting at the corrupted run, so ``steps=1`` is EAP), along one of two paths:

* ``ig="inputs"``: the input embeddings are ``corrupt + alpha (clean - corrupt)``; one batched
  forward + backward over the ``steps`` points gives every edge.
* ``ig="activations"``: for each writer group (the input; layer ``l``'s heads; its MLP) alone,
  its output is ``corrupt + alpha (clean - corrupt)`` in the corrupted run; the edges out of
  that group use the reader gradients of its own runs (``1 + 2 n_layers`` batched passes).

``"exact"`` (:mod:`lens.circuits.exact`) patches each edge alone. Scores are summed over (real)
positions and averaged over pairs; per pair and per position on request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from interventions import bridge
from interventions.edge_graph import Layout, WriterStore, layout, qkv_weights, writer_capture_hooks
from lens.circuits.exact import exact_scores
from lens.circuits.graph import Graph
from lens.circuits.metrics import MetricName, metric_rows, prepare_pairs
from lens.circuits.runs import _Hooks, _rows, writer_outputs
from lens.hooks import GradProbe, Probe, apply
from lens.patching.exact import metric_view, unembed_last_only
from lens.patching.pairs import Metric, Token, check_metric_output, repeat
from lens.stats import distributed as dist
from lens.tokens import Batch

Method = Literal["eap", "eap-ig", "exact"]
IGPath = Literal["inputs", "activations"]

__all__ = ["attribute", "metric_rows", "writer_outputs"]


def norm_vjp(
    norm: bridge.NormParams, x: Tensor, u: Tensor, *, weighted: bool = False
) -> Float[Tensor, "batch pos k d_model"]:
    """``J_norm(x)^T u`` for ``x`` ``[b, p, d]`` and ``u`` ``[b, p, k, d]`` (k cotangents at
    the same point), in closed form: RMS ``s (w u) - s^3/d x <w u, x>``; LN
    ``s (v - mean(v) - x_hat mean(v x_hat))`` with ``v = w u``, ``x_hat = (x - mean) s``.
    ``weighted``: ``u`` is already ``w u``."""
    xf = x.float()
    v = u.float()
    if norm.weight is not None and not weighted:
        v = v * norm.weight.to(u.device, torch.float32)
    d = x.shape[-1]
    if norm.kind == "LN":
        xf = xf - xf.mean(-1, keepdim=True)
    s = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + norm.eps)[:, :, None]  # [b, p, 1, 1]
    # <v, x> per cotangent as one batched product (no [b, p, k, d] temporary)
    dot = torch.einsum("bpkd,bpd->bpk", v, xf)[..., None]
    if norm.kind == "LN":  # x_hat = xf s: s (v - mean(v)) - x_hat s^2 <v, xf> / d
        out = (v - v.mean(-1, keepdim=True)).mul_(s)
        out.addcmul_(xf[:, :, None], dot * (s.pow(3) / d), value=-1.0)
    else:
        out = (v * s).addcmul_(xf[:, :, None], dot * (s.pow(3) / d), value=-1.0)
    return out.to(u.dtype)


def reader_grads(
    model: Any,
    lay: Layout,
    resid: list[Tensor],
    qkv: dict[str, list[Tensor]],
    mlp: list[Tensor],
    final: Tensor,
    copies: int = 1,
) -> list[Float[Tensor, "batch pos readers d_model"]]:
    """Per-reader input gradients, one block per stage in reader order (a layer's q/k/v
    readers; its MLP input; the logits), each averaged over ``copies`` copy-major copies.

    A head's q (k, v) input gradient is ``J_norm(x)^T (W_Q[h] g_q[h])`` at the layer input
    ``x``: the gradient the residual would receive if only that head's query read it.
    """

    def mean(t: Tensor) -> Tensor:
        return t.view(copies, t.shape[0] // copies, *t.shape[1:]).mean(0)

    blocks = []
    for layer in range(lay.n_layers):
        norm = bridge.block_norm_params(model, layer, "ln1")
        x = resid[layer].detach()
        parts = []
        for kind in ("q", "k", "v"):
            w, _ = qkv_weights(model, layer, kind)
            g = qkv[kind][layer]
            w = w.to(g.dtype)
            if norm.weight is not None:  # fold the norm's scale into W: v = w * (W g)
                w = w * norm.weight.to(w)[None, :, None]
            v = torch.einsum("bphe,hde->bphd", g, w)
            parts.append(mean(norm_vjp(norm, x, v, weighted=True)))
        blocks += [torch.cat(parts, dim=2), mean(mlp[layer])[:, :, None]]
    blocks.append(mean(final)[:, :, None])
    return blocks


def _grad_run(
    model: Any, lay: Layout, run: Batch, metric: Metric, extra: list[tuple[str, Any]],
    leaves: list[Tensor], interventions: Sequence[Any], copies: int, n: int,
) -> tuple[list[Tensor], Tensor]:  # fmt: skip
    """One forward + backward of ``run`` (``copies`` copy-major copies of ``n`` pairs): the
    reader gradient blocks of :func:`reader_grads` (mean over copies) and the first copy's
    writer outputs ``[n, W, pos, d]``. ``extra`` hooks may append grad leaves. A metric that
    reads only the last token gets only the last token unembedded."""
    L = lay.n_layers
    store = WriterStore()
    resid = [Probe(f"blocks.{i}.hook_resid_pre") for i in range(L)]
    names = {k: [GradProbe(f"blocks.{i}.attn.hook_{k}") for i in range(L)] for k in "qkv"}
    mlp = [GradProbe(f"blocks.{i}.ln2.hook_in") for i in range(L)]
    final = GradProbe("ln_final.hook_in")
    grads = [*names["q"], *names["k"], *names["v"], *mlp, final]
    hooks = _Hooks([*extra, *writer_capture_hooks(model, store)])
    last = unembed_last_only(metric, run)
    with torch.enable_grad(), apply(model, *interventions, hooks, *last, probes=[*resid, *grads]):
        logits = model(run.tokens, attention_mask=run.attention_mask)
        value = check_metric_output(metric(logits, metric_view(metric, run)), len(run))
        if not value.requires_grad:
            raise ValueError("the metric returned a tensor without grad; EAP needs gradients")
        if not bool(torch.isfinite(value).all()):
            raise ValueError("the metric is NaN or infinite on the corrupted run")
        inputs = leaves + [t for g in grads for t in g.tensors]
        torch.autograd.grad(value.sum(), inputs, allow_unused=True)
        shapes = {id(g): g.tensors[-1].shape for g in grads if g.tensors}
        for g in grads:
            g.tensors.clear()

    def got(g: GradProbe) -> Tensor:  # no gradient reached it (e.g. frozen patterns): zero
        return g.values[-1] if g.values else torch.zeros(shapes[id(g)])

    with torch.no_grad():
        blocks = reader_grads(
            model, lay, [p.value for p in resid],
            {k: [got(g) for g in v] for k, v in names.items()},
            [got(g) for g in mlp], got(final), copies,
        )  # fmt: skip
    return blocks, store.writer_major(lay, n)  # the first copy: alpha = 0, the corrupted run


def _interp(alphas: Tensor, target: Tensor, leaves: list[Tensor]) -> Any:
    """A hook moving each row's activation ``alpha_row`` of the way to ``target``."""

    def fn(act: Tensor, hook: Any) -> Tensor:
        a = alphas.to(act.device, act.dtype).view(-1, *([1] * (act.ndim - 1)))
        reps = act.shape[0] // target.shape[0]
        tgt = target.repeat(reps, *([1] * (act.ndim - 1))).to(act.device, act.dtype)
        out = (act + a * (tgt - act)).detach().requires_grad_(True)
        leaves.append(out)
        return out

    return fn


def _contract(
    lay: Layout, delta: Tensor, cols: list[int], blocks: list[Tensor], keep: Sequence[str]
) -> dict[str, Tensor]:
    """``sum (delta . g)`` over the existing edges out of the writers ``cols`` (``delta``:
    their deltas ``[b, len(cols), p, d]``) to ``[W, R]``, and on request ``[b, W, R]`` (per
    pair) or ``[p, W, R]`` (per position); per reader stage one batched product (over pairs,
    in float64) with only the writers below the stage."""
    n_w, n_r = len(lay.writers), len(lay.readers)
    b, p = delta.shape[0], delta.shape[2]
    per_pair = torch.zeros(b, n_w, n_r, dtype=torch.float64)
    per_pos = torch.zeros(p, n_w, n_r, dtype=torch.float64) if "position" in keep else None
    col_t = torch.tensor(cols)
    dd = delta.double()
    dw = dd.view(b, len(cols), -1)  # [b, cols, p * d]
    r0 = 0
    for g in blocks:
        r1 = r0 + g.shape[2]
        below = int((col_t < _writers_below(lay, r0)).sum())  # cols ascend: a prefix
        if below:
            gd = g.double()
            gw = gd.permute(0, 2, 1, 3).reshape(b, r1 - r0, -1)  # [b, readers, p * d]
            part = torch.bmm(dw[:, :below], gw.transpose(1, 2)).cpu()
            per_pair[:, col_t[:below], r0:r1] += part
            if per_pos is not None:
                pos = torch.einsum("bwpd,bprd->pwr", dd[:, :below], gd).cpu()
                per_pos[:, col_t[:below], r0:r1] += pos
        r0 = r1
    out = {"": per_pair.sum(0)}
    if "pair" in keep:
        out["pair"] = per_pair
    if per_pos is not None:
        out["position"] = per_pos
    return out


def _writers_below(lay: Layout, reader: int) -> int:
    """How many writers (a prefix of the writer order) reader ``reader`` sees."""
    stage = lay.reader_stage(reader)
    return sum(1 for i in range(len(lay.writers)) if lay.writer_stage(i) < stage)


def _chunk_scores(
    model: Any, lay: Layout, clean: Batch, corrupt: Batch, metric: Metric, steps: int,
    method: str, ig: str, interventions: Sequence[Any], keep: Sequence[str],
) -> dict[str, Tensor]:  # fmt: skip
    """Edge scores of one chunk of pairs: ``{"": [W, R] summed over pairs and positions,
    "pair": [b, W, R], "position": [p, W, R]}`` (the kinds in ``keep``)."""
    n = len(clean)
    copies = steps if method == "eap-ig" else 1
    alphas = (torch.arange(copies, dtype=torch.float32) / copies).repeat_interleave(n)
    clean_store = WriterStore()
    probes = [Probe("hook_embed")] + [Probe(bridge.z_hook(i)) for i in range(lay.n_layers)]
    capture = _Hooks(writer_capture_hooks(model, clean_store))
    with torch.no_grad(), apply(model, *interventions, capture, probes=probes):
        model(clean.tokens, attention_mask=clean.attention_mask)
    clean_w = clean_store.writer_major(lay)
    mask = clean.attention_mask.to(clean_w.device, clean_w.dtype)[:, None, :, None]
    run = repeat(corrupt, copies)
    run_metric = metric_rows(metric, 0, n)
    every = list(range(len(lay.writers)))
    if method != "eap-ig" or ig == "inputs":
        leaves: list[Tensor] = []
        extra = [("hook_embed", _interp(alphas, probes[0].value, leaves))]
        blocks, corrupt_w = _grad_run(
            model, lay, run, run_metric, extra, leaves, interventions, copies, n
        )
        return _contract(lay, (clean_w - corrupt_w) * mask, every, blocks, keep)
    # ig="activations": one batched pass per writer group, each group's edges from its own
    assert clean_store.input is not None
    groups = [("blocks.0.hook_resid_pre", [0], clean_store.input)]
    for i in range(lay.n_layers):
        base = 1 + i * (lay.n_heads + 1)
        heads = list(range(base, base + lay.n_heads))
        groups.append((bridge.z_hook(i), heads, probes[1 + i].value))
        groups.append((f"blocks.{i}.hook_mlp_out", [base + lay.n_heads], clean_store.mlps[i]))
    out: dict[str, Tensor] = {}
    for name, cols, target in groups:
        leaves = []
        extra = [(name, _interp(alphas, target, leaves))]
        blocks, corrupt_w = _grad_run(
            model, lay, run, run_metric, extra, leaves, interventions, copies, n
        )
        delta = ((clean_w - corrupt_w) * mask)[:, cols]
        for k, v in _contract(lay, delta, cols, blocks, keep).items():
            out[k] = out[k] + v if k in out else v
    return out


def attribute(
    model: Any,
    clean: Any,
    corrupt: Any,
    *,
    answer: Token | Sequence[Token] | None = None,
    wrong: Token | Sequence[Token] | None = None,
    metric: Metric | MetricName | None = None,
    method: Method = "eap-ig",
    steps: int = 5,
    ig: IGPath = "inputs",
    per_pair: bool = False,
    per_position: bool = False,
    batch_size: int = 8,
    interventions: Sequence[Any] = (),
    process_group: Any = None,
) -> Graph:
    """Score every edge of ``model``'s residual graph on clean/corrupt prompt pairs.

    Args:
        model: a TransformerBridge with pre-norm blocks.
        clean, corrupt: prompts (strings or token-id lists), paired, equal token length per
            pair; left-padded into batches.
        answer, wrong: the default metric is logit(answer) - logit(wrong) at the last token.
        metric: instead, ``"prob"``, ``"logprob"`` (of ``answer``), ``"kl"`` (minus the KL
            from the clean run), or a callable ``metric(logits, batch) -> [rows]``.
        method: ``"eap"``, ``"eap-ig"`` (gradients averaged over ``steps`` alphas
            ``0, 1/steps, ..., (steps-1)/steps`` from corrupted (0) towards clean (1)) or
            ``"exact"`` (each edge patched alone to its clean value in the corrupted run:
            ``m(patched) - m(corrupted)``; one forward per edge, batched).
        ig: EAP-IG's path: ``"inputs"`` (the input embeddings) or ``"activations"`` (each
            writer group's outputs in turn, see the module docstring).
        per_pair, per_position: also keep ``Graph.per_pair`` ``[pairs, W, R]`` (each pair's
            position-summed scores) / ``Graph.per_position`` ``[pos, W, R]`` (mean over pairs;
            left-padded positions).
        batch_size: pairs per forward (an EAP-IG forward holds ``steps * batch_size`` rows).
        interventions: applied in every run.
        process_group: under torch.distributed (default: the world when initialised), the
            chunks of ``batch_size`` pairs are dealt to the processes in turn and their
            scores summed over processes; every process returns the same graph.

    Returns:
        A :class:`~lens.circuits.graph.Graph`; scores summed over positions, mean over pairs.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> g = attribute(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, wrong=6, steps=2)
        >>> tuple(g.scores.shape), g.n_edges
        ((16, 28), 190)
    """
    if method not in ("eap", "eap-ig", "exact"):
        raise ValueError(f"method must be 'eap', 'eap-ig' or 'exact', got {method!r}")
    if ig not in ("inputs", "activations"):
        raise ValueError(f"ig must be 'inputs' or 'activations', got {ig!r}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    lay = layout(model)
    pairs = prepare_pairs(model, clean, corrupt, answer=answer, wrong=wrong, metric=metric)
    n = pairs.n_pairs
    keep = [k for k, on in (("pair", per_pair), ("position", per_position)) if on]
    rank, world = dist.rank(process_group), dist.world_size(process_group)
    mine = [start for i, start in enumerate(range(0, n, batch_size)) if i % world == rank]
    if method == "exact":
        parts = exact_scores(
            model, lay, pairs, batch_size=batch_size, interventions=interventions, keep=keep,
            starts=mine,
        )  # fmt: skip
    else:
        shape = (len(lay.writers), len(lay.readers))
        parts = {"": torch.zeros(shape, dtype=torch.float64)}
        if "pair" in keep:
            parts["pair"] = torch.zeros(n, *shape, dtype=torch.float64)
        if "position" in keep:  # every chunk has the batch's padded length
            p = pairs.clean.tokens.shape[1]
            parts["position"] = torch.zeros(p, *shape, dtype=torch.float64)
        for start in mine:
            stop = min(n, start + batch_size)
            s = _chunk_scores(
                model, lay, _rows(pairs.clean, start, stop), _rows(pairs.corrupt, start, stop),
                metric_rows(pairs.metric, start, stop), steps, method, ig, interventions, keep,
            )  # fmt: skip
            for k, v in s.items():
                v = v.cpu()
                if k == "pair":
                    parts["pair"][start:stop] = v
                else:
                    parts[k] += v
    for k in parts:  # each pair was scored by one process: sum the processes' parts
        parts[k] = dist.all_reduce_sum(parts[k], process_group)
    m = lay.mask()
    scores = (parts[""] / n).float() * m
    return Graph(
        lay, scores, method=method, steps=steps if method == "eap-ig" else 1, n_pairs=n,
        ig=ig if method == "eap-ig" else None,
        per_pair=parts["pair"].float() * m if "pair" in parts else None,
        per_position=(parts["position"] / n).float() * m if "position" in parts else None,
    )  # fmt: skip
