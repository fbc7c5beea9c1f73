"""Faithfulness of circuits: the clean run with every edge outside the circuit patched from the
corrupted run, ``(m(C) - m(empty)) / (m(full) - m(empty))`` with metrics averaged over pairs;
curves over circuit sizes with MIB's CPR and CMD areas (arXiv 2504.13151)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool
from torch import Tensor

from interventions.edge_graph import WriterStore, layout, writer_capture_hooks
from interventions.edges import EdgePatch, Source
from lens.circuits.graph import Circuit, Graph
from lens.circuits.metrics import MetricName, metric_rows, prepare_pairs
from lens.circuits.runs import _Hooks, _rows, writer_outputs
from lens.hooks import apply
from lens.patching.exact import metric_view, unembed_last_only
from lens.patching.pairs import Metric, Token, check_metric_output, repeat
from lens.tokens import as_batch

Ablation = Literal["corrupt", "mean"]


def mean_writer_outputs(
    model: Any, reference: Any, *, batch_size: int = 8, interventions: Sequence[Any] = ()
) -> Tensor:
    """Every writer's output averaged over the real tokens of ``reference`` (prompts or a
    batch): ``[1, 1, writers, d_model]``, the values of ``EdgePatch(source="mean")``.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> tuple(mean_writer_outputs(model, [[1, 2, 3], [4, 5]]).shape)
        (1, 1, 16, 64)
    """
    ref = as_batch(model, reference)
    total, count = None, 0.0
    for start in range(0, len(ref), batch_size):
        chunk = _rows(ref, start, min(len(ref), start + batch_size))
        w = writer_outputs(model, chunk, interventions=interventions).double()
        m = chunk.attention_mask.to(w.device, w.dtype)[:, :, None, None]
        part = (w * m).sum((0, 1))
        total = part if total is None else total + part
        count += float(m.sum())
    assert total is not None
    return (total / count).float()[None, None]


def _metrics(
    model: Any,
    pairs: Any,
    patched: Bool[Tensor, "sizes writers readers"],
    batch_size: int,
    interventions: Sequence[Any],
    means: Tensor | None = None,
    exists: Tensor | None = None,
) -> tuple[Tensor, float, float]:
    """Mean metric per row of ``patched`` (edges patched from corrupt, or to ``means``), and
    the clean run's and the empty circuit's mean metrics (the corrupted run, or every edge
    mean-ablated); every size of one chunk of pairs in one forward."""
    n = pairs.n_pairs
    if means is not None:  # the empty circuit is one more row
        assert exists is not None
        patched = torch.cat([patched, exists[None]])
    s = patched.shape[0]
    sums = torch.zeros(s, dtype=torch.float64)
    clean_sum = corrupt_sum = 0.0
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        clean, corrupt = _rows(pairs.clean, start, stop), _rows(pairs.corrupt, start, stop)
        metric = metric_rows(pairs.metric, start, stop)
        c = stop - start
        store = WriterStore()  # the corrupted run's writer outputs, captured as it runs
        capture = _Hooks(writer_capture_hooks(model, store))
        with torch.no_grad(), apply(model, *interventions):
            out = model(clean.tokens, attention_mask=clean.attention_mask)
            clean_sum += float(check_metric_output(metric(out, clean), c).double().sum())
        with torch.no_grad(), apply(model, *interventions, capture):
            out = model(corrupt.tokens, attention_mask=corrupt.attention_mask)
            corrupt_sum += float(check_metric_output(metric(out, corrupt), c).double().sum())
        if means is None:
            source: Source = "corrupt"
            rep = store.stacked(layout(model))  # read copy-major by EdgePatch, never repeated
        else:
            source, rep = "mean", means
        run = repeat(clean, s)
        patch = EdgePatch(source=source, values=rep, mask=patched)  # size-major rows
        last = unembed_last_only(metric, run)  # a last-token metric: unembed only that
        with torch.no_grad(), apply(model, *interventions, patch, *last):
            out = model(run.tokens, attention_mask=run.attention_mask)
        value = check_metric_output(metric(out, metric_view(metric, run)), s * c).double()
        if not bool(torch.isfinite(value).all()):
            raise ValueError("the metric is NaN or infinite under edge patching")
        sums += value.view(s, c).sum(1).cpu()
    if means is not None:
        return sums[:-1] / n, clean_sum / n, float(sums[-1]) / n
    return sums / n, clean_sum / n, corrupt_sum / n


def _normalise(m: Tensor, clean: float, corrupt: float) -> Tensor:
    gap = clean - corrupt
    if abs(gap) < 1e-12:
        raise ValueError(
            f"the clean and corrupted runs give the same mean metric ({clean:.6g}): "
            "faithfulness is undefined; choose pairs whose answers differ"
        )
    return (m - corrupt) / gap


def faithfulness(
    model: Any,
    circuit: Circuit,
    clean: Any,
    corrupt: Any,
    *,
    answer: Token | Sequence[Token] | None = None,
    wrong: Token | Sequence[Token] | None = None,
    metric: Metric | MetricName | None = None,
    ablation: Ablation = "corrupt",
    reference: Any = None,
    batch_size: int = 8,
    interventions: Sequence[Any] = (),
) -> float:
    """Normalised recovery of ``circuit``: 1 = the clean run, 0 = the corrupted run.

    Every edge outside the circuit is patched with its writer's corrupted output
    (``ablation="corrupt"``; 0 = the corrupted run) or its mean output over ``reference``
    prompts (``"mean"``; default reference: the corrupt prompts; 0 = every edge mean-ablated)
    through :class:`~interventions.EdgePatch`; metrics are averaged over pairs before
    normalising. ``metric``: as in :func:`~lens.circuits.attribute`.

    Example:
        >>> import lens
        >>> from lens.circuits import attribute
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> g = attribute(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, method="eap")
        >>> full = g.top(g.n_edges)
        >>> round(faithfulness(model, full, [[1, 2, 3]], [[1, 4, 3]], answer=5), 4)
        1.0
    """
    pairs = prepare_pairs(model, clean, corrupt, answer=answer, wrong=wrong, metric=metric)
    exists = circuit.layout.mask()
    patched = (exists & ~circuit.mask)[None]
    means = _means(model, pairs, ablation, reference, batch_size, interventions)
    m, c, x = _metrics(model, pairs, patched, batch_size, interventions, means, exists)
    return float(_normalise(m, c, x)[0])


def _means(
    model: Any, pairs: Any, ablation: str, reference: Any, batch_size: int,
    interventions: Sequence[Any],
) -> Tensor | None:  # fmt: skip
    if ablation not in ("corrupt", "mean"):
        raise ValueError(f"ablation must be 'corrupt' or 'mean', got {ablation!r}")
    if ablation == "corrupt":
        if reference is not None:
            raise ValueError("reference= is for ablation='mean'")
        return None
    ref = pairs.corrupt if reference is None else reference
    return mean_writer_outputs(model, ref, batch_size=batch_size, interventions=interventions)


@dataclass
class FaithfulnessCurve:
    """Faithfulness over circuit sizes.

    Attributes:
        sizes: requested numbers of top edges; ``n_edges``: edges left after pruning.
        faithfulness: one value per size.
        cpr: area under faithfulness over the fraction of edges kept (trapezoid, 0..1,
            the empty and full circuits included as endpoints); higher is better.
        cmd: area under ``|1 - faithfulness|`` over the same axis; lower is better.
        clean_metric, empty_metric: the mean metric of the full model and of the empty
            circuit (the normalisation's 1 and 0).
    """

    sizes: list[int]
    n_edges: list[int]
    faithfulness: list[float]
    cpr: float
    cmd: float
    clean_metric: float = float("nan")
    empty_metric: float = float("nan")


def faithfulness_curve(
    model: Any,
    graph: Graph,
    clean: Any,
    corrupt: Any,
    *,
    sizes: Sequence[int] | None = None,
    answer: Token | Sequence[Token] | None = None,
    wrong: Token | Sequence[Token] | None = None,
    metric: Metric | MetricName | None = None,
    ablation: Ablation = "corrupt",
    reference: Any = None,
    batch_size: int = 8,
    interventions: Sequence[Any] = (),
) -> FaithfulnessCurve:
    """Faithfulness of ``graph.top(n)`` for each ``n`` in ``sizes`` (default: 20 sizes spaced
    evenly in log scale from 1 edge to all), every size of a chunk of pairs in one forward;
    ``ablation``, ``reference`` and ``metric`` as in :func:`faithfulness`.

    Example:
        >>> import lens
        >>> from lens.circuits import attribute
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> g = attribute(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, method="eap")
        >>> curve = faithfulness_curve(model, g, [[1, 2, 3]], [[1, 4, 3]], answer=5)
        >>> len(curve.faithfulness), round(curve.faithfulness[-1], 4)
        (19, 1.0)
    """
    total = graph.n_edges
    if sizes is None:
        grid = torch.logspace(0, torch.log10(torch.tensor(float(total))), 20)
        sizes = sorted({int(round(float(v))) for v in grid})
    sizes = sorted({0, *[int(v) for v in sizes], total})
    if sizes[0] < 0 or sizes[-1] > total:
        raise ValueError(f"sizes must lie in 0..{total} (this graph's edge count)")
    pairs = prepare_pairs(model, clean, corrupt, answer=answer, wrong=wrong, metric=metric)
    circuits = [graph.top(n) for n in sizes]
    exists = graph.layout.mask()
    patched = torch.stack([exists & ~c.mask for c in circuits])
    means = _means(model, pairs, ablation, reference, batch_size, interventions)
    m, c, x = _metrics(model, pairs, patched, batch_size, interventions, means, exists)
    f = _normalise(m, c, x)
    frac = torch.tensor([ci.n_edges / total for ci in circuits], dtype=torch.float64)
    cpr = float(torch.trapezoid(f, frac))
    cmd = float(torch.trapezoid((1 - f).abs(), frac))
    n_edges = [ci.n_edges for ci in circuits]
    return FaithfulnessCurve(list(sizes), n_edges, f.tolist(), cpr, cmd, c, x)
