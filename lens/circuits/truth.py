"""Establishing a circuit's truth by patching, and scoring methods against it.

:func:`find_circuit` removes edges greedily (ACDC's order: readers from the logits backwards)
while the faithfulness of what is left stays within ``tau`` of the current circuit's, each
removal judged by patching the removed edges from the corrupted run in the clean run
(:class:`interventions.EdgePatch`). This is a circuit-level ablation criterion, not the
single-edge scores of ``attribute(method="exact")``, so scoring ``exact`` against its result is
not circular. :func:`edge_drops` checks a written-down circuit (each edge's removal must cost
faithfulness); :func:`auroc_table` scores EAP, EAP-IG and exact by edge AUROC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interventions.edge_graph import Layout, layout
from interventions.edges import EdgePatch
from lens.circuits.attribute import Method, attribute
from lens.circuits.graph import Circuit, prune
from lens.circuits.planted import edge_auroc
from lens.circuits.runs import writer_outputs
from lens.hooks import apply
from lens.tokens import as_batch

Edge = tuple[str, str]


@dataclass
class _Pairs:
    """Clean tokens, corrupted writer outputs and the two ends of the normalisation."""

    tokens: Tensor
    values: Tensor
    answer: Tensor
    wrong: Tensor
    clean: float
    corrupt: float


def _metric(logits: Tensor, answer: Tensor, wrong: Tensor) -> Tensor:
    rows = torch.arange(len(logits))
    k = len(logits) // len(answer)
    last = logits[:, -1].double()
    return last[rows, answer.repeat(k)] - last[rows, wrong.repeat(k)]


def _prepare(
    model: Any, clean: Any, corrupt: Any, answer: Sequence[int], wrong: Sequence[int]
) -> _Pairs:
    lengths = {len(p) for p in [*clean, *corrupt]}
    if len(lengths) != 1 or len(clean) != len(corrupt) or len(answer) != len(clean):
        raise ValueError(
            f"give equally many clean, corrupt, answer and wrong ({len(clean)}, {len(corrupt)}, "
            f"{len(answer)}, {len(wrong)}) token lists, all of one length (got {sorted(lengths)})"
        )
    tokens = as_batch(model, torch.tensor(clean)).tokens
    bad = as_batch(model, torch.tensor(corrupt))
    a, w = torch.tensor(list(answer)), torch.tensor(list(wrong))
    with torch.no_grad():
        m_clean = float(_metric(model(tokens), a, w).mean())
        m_corrupt = float(_metric(model(bad.tokens), a, w).mean())
    if abs(m_clean - m_corrupt) < 1e-9:
        raise ValueError("the clean and corrupted runs give the same mean logit difference")
    return _Pairs(tokens, writer_outputs(model, bad), a, w, m_clean, m_corrupt)


def _faithfulness(
    model: Any, pairs: _Pairs, patched: Bool[Tensor, "k writers readers"]
) -> Float[Tensor, " k"]:
    """Faithfulness with each row's ``patched`` edges taken from the corrupted run (one
    forward of ``k x pairs`` rows)."""
    k, n = len(patched), len(pairs.tokens)
    patch = EdgePatch(source="corrupt", values=pairs.values, mask=patched.repeat_interleave(n, 0))
    with torch.no_grad(), apply(model, patch):
        out = model(pairs.tokens.repeat(k, 1))
    m = _metric(out, pairs.answer, pairs.wrong).view(k, n).mean(1)
    return (m - pairs.corrupt) / (pairs.clean - pairs.corrupt)


def _mask(lay: Layout, edges: Sequence[Edge]) -> Bool[Tensor, "writers readers"]:
    out = torch.zeros_like(lay.mask())
    for w, r in edges:
        out[lay.writer_index(w), lay.reader_index(r)] = True
    if bool((out & ~lay.mask()).any()):
        raise ValueError("some of the edges do not exist in this model's graph")
    return out


def find_circuit(
    model: Any,
    clean: Sequence[Sequence[int]],
    corrupt: Sequence[Sequence[int]],
    *,
    answer: Sequence[int],
    wrong: Sequence[int],
    tau: float = 0.01,
) -> tuple[Circuit, float]:
    """The circuit left by greedy removal: visit every edge once (readers from the logits
    backwards, writers from the last), drop it if faithfulness falls by less than ``tau``.

    Faithfulness is ``(m(C) - m(corrupt)) / (m(clean) - m(corrupt))`` with ``m`` the mean
    logit difference ``answer - wrong`` at the last position, edges outside ``C`` patched from
    the corrupted run. Returns the circuit (pruned to input -> logits paths) and its
    faithfulness. Token-id prompts of one length only.

    Example:
        >>> from lens.circuits.planted import induction_model, induction_pairs
        >>> clean, corrupt, answer, wrong = induction_pairs(4)
        >>> c, f = find_circuit(induction_model(), clean, corrupt, answer=answer, wrong=wrong)
        >>> ("a0.h0", "a1.h0<k>") in c.edges, f > 0.95
        (True, True)
    """
    if not 0 <= tau < 1:
        raise ValueError(f"tau must be in [0, 1), got {tau}")
    lay = layout(model)
    pairs = _prepare(model, clean, corrupt, answer, wrong)
    exists = lay.mask()
    keep = exists.clone()
    order = sorted(exists.nonzero().tolist(), key=lambda e: (-lay.reader_stage(e[1]), -e[0]))
    current = float(_faithfulness(model, pairs, (exists & ~keep)[None])[0])
    for w, r in order:
        keep[w, r] = False
        f = float(_faithfulness(model, pairs, (exists & ~keep)[None])[0])
        if current - f < tau:
            current = f
        else:
            keep[w, r] = True
    return Circuit(lay, prune(lay, keep)), current


def edge_drops(
    model: Any,
    edges: Sequence[Edge],
    clean: Sequence[Sequence[int]],
    corrupt: Sequence[Sequence[int]],
    *,
    answer: Sequence[int],
    wrong: Sequence[int],
) -> tuple[float, dict[Edge, float]]:
    """Faithfulness of the circuit ``edges`` and, for each edge, how much faithfulness is
    lost when that edge alone is also patched (all in one batched forward)."""
    lay = layout(model)
    pairs = _prepare(model, clean, corrupt, answer, wrong)
    exists, mask = lay.mask(), _mask(lay, edges)
    rows = [exists & ~mask]
    for w, r in edges:
        one = exists & ~mask
        one[lay.writer_index(w), lay.reader_index(r)] = True
        rows.append(one)
    f = _faithfulness(model, pairs, torch.stack(rows))
    full = float(f[0])
    return full, {e: full - float(v) for e, v in zip(edges, f[1:])}


def auroc_table(
    model: Any,
    truth: Sequence[Edge],
    clean: Sequence[Sequence[int]],
    corrupt: Sequence[Sequence[int]],
    *,
    answer: Sequence[int],
    wrong: Sequence[int],
    methods: Sequence[Method] = ("eap", "eap-ig", "exact"),
    steps: int = 5,
) -> dict[str, float]:
    """Edge AUROC of each method's ``|score|`` against the ``truth`` edges."""
    out: dict[str, float] = {}
    for method in methods:
        g = attribute(
            model, clean, corrupt, answer=list(answer), wrong=list(wrong),
            method=method, steps=steps, batch_size=len(clean),
        )  # fmt: skip
        out[method] = edge_auroc(g, truth)
    return out
