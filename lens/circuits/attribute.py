"""Edge attribution patching: EAP and EAP-IG scores for every edge of the residual graph.

EAP scores the edge ``w -> r`` by ``(w_clean - w_corrupt) . d metric / d (r's input)`` with the
gradient taken at the corrupted run. EAP-IG averages that gradient over ``steps`` runs whose
input embeddings are ``corrupt + alpha (clean - corrupt)`` at ``alpha = 0, 1/steps, ...,
(steps - 1)/steps`` (a left Riemann sum starting at the corrupted run, so ``steps=1`` is EAP).
All edges come from one clean forward and one batched forward + backward over the
``steps`` interpolation points. Scores are summed over (real) positions and averaged over pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from interventions import bridge
from interventions.edge_graph import (
    Layout,
    WriterStore,
    layout,
    qkv_weights,
    writer_capture_hooks,
)
from lens.circuits.graph import Graph
from lens.hooks import GradProbe, Probe, apply
from lens.patching.pairs import LogitDiff, Metric, Token, check_metric_output, prepare, repeat
from lens.tokens import Batch

Method = Literal["eap", "eap-ig"]


class _Hooks:
    """Private intervention: hooks given as ``(name, fn)`` pairs."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    def hooks(self, model: Any) -> list[tuple[str, Any]]:
        return self.pairs


def _rows(batch: Batch, start: int, stop: int) -> Batch:
    return Batch(batch.tokens[start:stop], batch.attention_mask[start:stop], batch.padding_side)


def metric_rows(metric: Metric, start: int, stop: int) -> Metric:
    """The metric for pairs ``start:stop`` (the default one slices its per-pair answer ids; a
    custom metric gets each chunk's batch as is)."""
    if isinstance(metric, LogitDiff):
        wrong = None if metric.wrong is None else metric.wrong[start:stop]
        return LogitDiff(metric.answer[start:stop], wrong)
    return metric


def writer_outputs(
    model: Any, batch: Batch, *, interventions: Sequence[Any] = ()
) -> Float[Tensor, "batch pos writers d_model"]:
    """Every writer's output ``[batch, pos, writers, d_model]`` on ``batch`` (no grad), in
    :func:`interventions.edges.layout` order; ``source`` values for ``EdgePatch``.

    Example:
        >>> import lens
        >>> from lens.tokens import as_batch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> tuple(writer_outputs(model, as_batch(model, [[1, 2, 3]])).shape)
        (1, 3, 16, 64)
    """
    lay = layout(model)
    store = WriterStore()
    with torch.no_grad(), apply(model, *interventions, _Hooks(writer_capture_hooks(model, store))):
        model(batch.tokens, attention_mask=batch.attention_mask)
    return store.stacked(lay)


def reader_grads(
    model: Any,
    lay: Layout,
    resid: list[Tensor],
    qkv: dict[str, list[Tensor]],
    mlp: list[Tensor],
    final: Tensor,
) -> Float[Tensor, "batch pos readers d_model"]:
    """Per-reader input gradients from the q/k/v, MLP-input and final-residual gradients.

    A head's q (k, v) input gradient is ``J_norm(x)^T (W_Q[h] g_q[h])`` at the layer input
    ``x``: the gradient the residual would receive if only that head's query read it.
    """
    parts = []
    for layer in range(lay.n_layers):
        norm = bridge.block_norm_params(model, layer, "ln1")
        us = []
        for kind in ("q", "k", "v"):
            w, _ = qkv_weights(model, layer, kind)
            g = qkv[kind][layer]
            us.append(torch.einsum("bphe,hde->bphd", g, w.to(g.dtype)))
        u = torch.cat(us, dim=2)  # [b, p, H + 2K, d]
        with torch.enable_grad():
            x = resid[layer].detach()[:, :, None].expand(u.shape).clone().requires_grad_(True)
            (gx,) = torch.autograd.grad(norm.apply(x), x, u)
        parts += [gx, mlp[layer][:, :, None]]
    parts.append(final[:, :, None])
    return torch.cat(parts, dim=2)


def _chunk_scores(
    model: Any,
    lay: Layout,
    clean: Batch,
    corrupt: Batch,
    metric: Metric,
    steps: int,
    method: Method,
    interventions: Sequence[Any],
) -> tuple[Tensor, Tensor]:
    """Summed edge scores ``[W, R]`` of one chunk of pairs, and the corrupted metric."""
    n = len(clean)
    emb_probe = Probe("hook_embed")
    clean_store = WriterStore()
    capture = _Hooks(writer_capture_hooks(model, clean_store))
    with torch.no_grad(), apply(model, *interventions, capture, probes=[emb_probe]):
        model(clean.tokens, attention_mask=clean.attention_mask)
    clean_w = clean_store.stacked(lay)
    clean_emb = emb_probe.value
    copies = steps if method == "eap-ig" else 1
    alphas = torch.arange(copies, dtype=clean_emb.dtype) / copies
    run = repeat(corrupt, copies)
    leaves: list[Tensor] = []

    def interpolate(act: Tensor, hook: Any) -> Tensor:
        a = alphas.to(act.device).repeat_interleave(n)[:, None, None]
        out = (act + a * (clean_emb.repeat(copies, 1, 1).to(act.dtype) - act)).detach()
        out.requires_grad_(True)
        leaves.append(out)
        return out

    L = lay.n_layers
    store = WriterStore()
    resid = [Probe(f"blocks.{i}.hook_resid_pre") for i in range(L)]
    names = {k: [GradProbe(f"blocks.{i}.attn.hook_{k}") for i in range(L)] for k in "qkv"}
    mlp = [GradProbe(f"blocks.{i}.ln2.hook_in") for i in range(L)]
    final = GradProbe("ln_final.hook_in")
    grads = [*names["q"], *names["k"], *names["v"], *mlp, final]
    hooks = _Hooks([("hook_embed", interpolate), *writer_capture_hooks(model, store)])
    with torch.enable_grad(), apply(model, *interventions, hooks, probes=[*resid, *grads]):
        logits = model(run.tokens, attention_mask=run.attention_mask)
        value = check_metric_output(metric(logits, run), copies * n)
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

    g_read = reader_grads(
        model,
        lay,
        [p.value for p in resid],
        {k: [got(g) for g in v] for k, v in names.items()},
        [got(g) for g in mlp],
        got(final),
    )
    seq = g_read.shape[1]
    g_read = g_read.view(copies, n, seq, *g_read.shape[2:]).mean(0)
    corrupt_w = store.stacked(lay)[:n]
    mask = clean.attention_mask.to(g_read.device, g_read.dtype)[:, :, None, None]
    delta = (clean_w - corrupt_w) * mask
    scores = torch.einsum("bpwd,bprd->wr", delta.double(), g_read.double())
    return scores, value.detach()[:n].double()


def attribute(
    model: Any,
    clean: Any,
    corrupt: Any,
    *,
    answer: Token | Sequence[Token] | None = None,
    wrong: Token | Sequence[Token] | None = None,
    metric: Metric | None = None,
    method: Method = "eap-ig",
    steps: int = 5,
    batch_size: int = 8,
    interventions: Sequence[Any] = (),
) -> Graph:
    """Score every edge of ``model``'s residual graph on clean/corrupt prompt pairs.

    Args:
        model: a TransformerBridge with pre-norm blocks.
        clean, corrupt: prompts (strings or token-id lists), paired, equal token length per
            pair; left-padded into batches.
        answer, wrong: the default metric is logit(answer) - logit(wrong) at the last token.
        metric: instead, ``metric(logits, batch) -> [rows]``, differentiable.
        method: ``"eap"`` or ``"eap-ig"`` (gradients averaged over ``steps`` alphas
            ``0, 1/steps, ..., (steps-1)/steps`` between corrupted (0) and clean (1) inputs).
        batch_size: pairs per forward (the EAP-IG forward holds ``steps * batch_size`` rows).
        interventions: applied in every run.

    Returns:
        A :class:`~lens.circuits.graph.Graph`; scores summed over positions, mean over pairs.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> g = attribute(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, wrong=6, steps=2)
        >>> tuple(g.scores.shape), g.n_edges
        ((16, 28), 190)
    """
    if method not in ("eap", "eap-ig"):
        raise ValueError(f"method must be 'eap' or 'eap-ig', got {method!r}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    lay = layout(model)
    pairs = prepare(
        model, clean, corrupt, answer=answer, wrong=wrong, metric=metric, positions="last"
    )
    n = pairs.n_pairs
    total = torch.zeros(len(lay.writers), len(lay.readers), dtype=torch.float64)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        chunk_metric = metric_rows(pairs.metric, start, stop)
        s, _ = _chunk_scores(
            model,
            lay,
            _rows(pairs.clean, start, stop),
            _rows(pairs.corrupt, start, stop),
            chunk_metric,
            steps,
            method,
            interventions,
        )
        total += s.cpu()
    scores = (total / n).float() * lay.mask()
    return Graph(lay, scores, method=method, steps=steps if method == "eap-ig" else 1, n_pairs=n)
