"""Relation-specific neurons by average precision (as in arXiv 2502.17355).

A neuron's response to a prompt is its mean activation over the prompt's real tokens
(``mlp.hook_post`` by default, i.e. what the MLP's output projection reads). For relation r,
the responses of all r prompts (positives) and of a seeded sample of other relations' prompts
(negatives, ``neg_ratio`` per positive, default 4:1) are ranked, and the neuron's score is
the average precision of that ranking as a classifier of "prompt is relation r". The top k
neurons over all layers are kept per relation.

Average precision: sort by response, highest first; AP = mean over the positives of the
precision at the positive's rank. Ties are broken pessimistically: among equal responses
the negatives rank first, so a constant (e.g. dead) neuron scores the lowest AP its ranks
allow, never a lucky high one.

Default k: the paper keeps 3,000 neurons per relation for 7B Llama-2 models (32 layers x
11,008 = 352,256 MLP neurons); lens scales this by the number of MLP neurons,
k = max(1, round(3000 * n_layers * d_mlp / 352256)), e.g. 392 for SmolLM2-135M.

Memory: responses are kept per example (``ExampleMeans``, at most ``max_examples`` rows of
``n_layers * d_mlp`` float64 values; by default the number of prompts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interventions.neurons import NeuronSite, neurons_by_layer
from lens.collect import collect
from lens.stats.accumulators import ExampleMeans, Label
from lens.stats.corpus import labelled

PAPER_K = 3000
PAPER_NEURONS = 32 * 11008


def default_k(model: Any) -> int:
    """k scaled from the paper's 3,000 for 7B Llama-2 by the number of MLP neurons.

    Example:
        >>> import lens
        >>> default_k(lens.load_model(lens.tiny_config("llama")))   # 3 x 128 neurons
        3
    """
    n = int(model.cfg.n_layers) * int(model.cfg.d_mlp)
    return max(1, round(PAPER_K * n / PAPER_NEURONS))


def average_precision(
    scores: Float[Tensor, "n m"], labels: Bool[Tensor, " n"]
) -> Float[Tensor, " m"]:
    """Average precision of each column of ``scores`` as a ranking of ``labels``.

    Ties: negatives rank before positives (pessimistic; see the module docstring).

    Example:
        >>> import torch
        >>> s = torch.tensor([[0.9], [0.8], [0.7], [0.1]])
        >>> average_precision(s, torch.tensor([True, False, True, False])).tolist()
        [0.8333333333333333]
    """
    labels = labels.bool()
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("average precision needs at least one positive example")
    scores = scores.double()
    # stable sorts: first by label (negatives first), then by score (descending) -> ties keep
    # negatives ahead of positives
    by_label = torch.argsort(labels.long(), stable=True)
    order = by_label[torch.argsort(-scores[by_label], dim=0, stable=True)]  # [n, m]
    hits = labels[order].double()
    ranks = torch.arange(1, scores.shape[0] + 1, dtype=torch.float64)[:, None]
    precision = hits.cumsum(0) / ranks
    return (precision * hits).sum(0) / n_pos


@dataclass
class APResult:
    """Relation-specific neurons.

    Attributes:
        groups: relation labels.
        layers: layer number of each site.
        scores: ``[relation, layer, neuron]`` average precision.
        top: per relation, the k best (layer, neuron) pairs, best first.
        k: neurons kept per relation.
        n_positive, n_negative: examples used per relation.
    """

    groups: list[Label]
    layers: list[int]
    scores: Float[Tensor, "relation layer neuron"]
    top: dict[Label, list[tuple[int, int]]]
    k: int
    n_positive: dict[Label, int]
    n_negative: dict[Label, int]

    def by_layer(self, group: Label) -> dict[int, list[int]]:
        """``{layer: [neurons]}`` of one relation (the form NeuronDeactivation takes)."""
        return neurons_by_layer(self.top[group])


def rank_neurons(stats: ExampleMeans, *, k: int, neg_ratio: float = 4.0, seed: int = 0) -> APResult:
    """Score every neuron of ``stats`` by average precision per relation; keep the top k.

    Negatives for relation i are drawn without replacement from the other relations'
    examples (ordered by example id) with ``torch.Generator().manual_seed(seed + i)``;
    ``round(neg_ratio * n_positives)`` of them, or all when there are fewer.
    """
    if not isinstance(stats, ExampleMeans):
        raise TypeError("rank_neurons needs an ExampleMeans accumulator")
    if stats.n_groups < 2:
        raise ValueError("average precision needs at least two relations (groups)")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if neg_ratio <= 0:
        raise ValueError(f"neg_ratio must be > 0, got {neg_ratio}")
    _, group, values = stats.sorted()
    group, values = group.cpu(), values.cpu()
    n_sites, width = values.shape[1], values.shape[2]
    flat = values.reshape(values.shape[0], -1)
    counts = torch.bincount(group, minlength=stats.n_groups)
    empty = [g for g, c in zip(stats.groups, counts.tolist()) if c == 0]
    if empty:
        raise ValueError(f"relations {empty!r} have no prompts")
    k = min(k, n_sites * width)
    scores = torch.zeros(stats.n_groups, n_sites * width, dtype=torch.float64)
    top: dict[Label, list[tuple[int, int]]] = {}
    n_pos: dict[Label, int] = {}
    n_neg: dict[Label, int] = {}
    for i, g in enumerate(stats.groups):
        pos = torch.nonzero(group == i).flatten()
        others = torch.nonzero(group != i).flatten()
        want = min(round(neg_ratio * pos.numel()), others.numel())
        gen = torch.Generator().manual_seed(seed + i)
        neg = others[torch.randperm(others.numel(), generator=gen)[:want]]
        rows = torch.cat([pos, neg])
        labels = torch.cat([torch.ones(pos.numel()), torch.zeros(neg.numel())]).bool()
        scores[i] = average_precision(flat[rows], labels)
        best = torch.sort(-scores[i], stable=True).indices[:k]
        top[g] = [(stats.layers[int(b) // width], int(b) % width) for b in best]
        n_pos[g], n_neg[g] = int(pos.numel()), int(neg.numel())
    return APResult(
        groups=list(stats.groups),
        layers=list(stats.layers),
        scores=scores.view(stats.n_groups, n_sites, width),
        top=top,
        k=k,
        n_positive=n_pos,
        n_negative=n_neg,
    )


def average_precision_neurons(
    model: Any,
    prompts: Sequence[Any],
    relations: Sequence[Label],
    *,
    k: int | None = None,
    neg_ratio: float = 4.0,
    seed: int = 0,
    site: NeuronSite = "mlp_post",
    layers: str | int | Sequence[int] = "all",
    max_examples: int | None = None,
    **collect_kwargs: Any,
) -> APResult:
    """Find relation-specific neurons: top-k by average precision per relation.

    Args:
        model: a TransformerBridge.
        prompts: texts or token-id lists.
        relations: the relation label of each prompt (same length as ``prompts``).
        k: neurons kept per relation (default :func:`default_k`).
        neg_ratio: sampled negatives per positive.
        seed: seed of the negative sampling.
        site: the neuron site whose activations are the responses (``mlp_post`` or ``mlp_pre``).
        layers: ``"all"`` or a list of layers.
        max_examples: cap of stored responses (default ``len(prompts)``).
        **collect_kwargs: for :func:`lens.collect` (batch_size, positions, checkpoint, ...).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = average_precision_neurons(
        ...     model, [[1, 2], [3, 4], [5, 6], [7, 8]], ["x", "y", "x", "y"], k=2, progress=False
        ... )
        >>> len(res.top["x"]), tuple(res.scores.shape)
        (2, (2, 3, 128))
    """
    corpus = labelled(prompts, relations)
    groups = list(dict.fromkeys(relations))
    acc = ExampleMeans.for_model(
        model, groups, site=site, layers=layers, max_examples=max_examples or len(corpus)
    )
    collect(model, corpus, accumulators=[acc], **collect_kwargs)
    return rank_neurons(acc, k=k or default_k(model), neg_ratio=neg_ratio, seed=seed)
