"""LAPE: language activation probability entropy (Tang et al., 2024).

For every MLP neuron (l, j) and language k, ``p[k, l, j]`` is the share of language-k tokens
on which the neuron is active. "Active" is read at ``blocks.{l}.mlp.hook_pre``:

* gated MLPs (Llama, SmolLM2): ``hook_pre`` is the gate pre-activation g, and the neuron is
  active when g > 0. For SiLU, silu(g) = g * sigmoid(g) has the sign of g (sigmoid > 0), so
  g > 0 is exactly "the activation function's output is > 0", the criterion of the paper.
  The gated product silu(g) * up (``hook_post``) is *not* used: its sign also depends on up.
* non-gated MLPs (GPT-2): ``hook_pre`` is the pre-activation x, active when x > 0; GELU(x) =
  x * Phi(x) (and its tanh approximation) is positive exactly when x > 0.

Then: normalise p over languages, take the entropy; drop neurons whose largest p is not above
the ``filter_rate`` quantile of all p; keep the ``top_rate`` share (of all neurons) with the
lowest entropy; assign each kept neuron to every language whose p is above the
``activation_bar_ratio`` quantile of all p.

Quantiles: the q-quantile of n values is the k-th smallest with k = round(q * n), clamped to
1..n; comparisons are strict (>). Entropy ties are broken by (layer, neuron) order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interventions.neurons import NeuronSite, neurons_by_layer
from lens.collect import collect
from lens.stats.accumulators import ActivationProbability, Label


@dataclass
class LapeResult:
    """Language-specific neurons.

    Attributes:
        groups: language labels, in the order of the first axis of ``probability``.
        layers: layer number of each site.
        probability: ``p [group, layer, neuron]``.
        entropy: ``[layer, neuron]`` entropy of p normalised over languages (nan if p = 0).
        selected: ``[layer, neuron]`` the lowest-entropy neurons kept.
        neurons: per language, the (layer, neuron) pairs assigned to it.
        exclusive: per language, its neurons that belong to no other language.
        per_layer: ``[group, layer]`` number of neurons assigned to each language per layer.
        filter_threshold, activation_bar: the two quantile thresholds used.
    """

    groups: list[Label]
    layers: list[int]
    probability: Float[Tensor, "group layer neuron"]
    entropy: Float[Tensor, "layer neuron"]
    selected: Bool[Tensor, "layer neuron"]
    neurons: dict[Label, list[tuple[int, int]]]
    exclusive: dict[Label, list[tuple[int, int]]]
    per_layer: Int[Tensor, "group layer"]
    filter_threshold: float
    activation_bar: float

    def by_layer(self, group: Label, exclusive: bool = False) -> dict[int, list[int]]:
        """``{layer: [neurons]}`` of one language (the form NeuronDeactivation takes)."""
        return neurons_by_layer((self.exclusive if exclusive else self.neurons)[group])


def quantile_value(values: Tensor, q: float) -> float:
    """The k-th smallest value with k = round(q * n) clamped to 1..n.

    Example:
        >>> quantile_value(torch.arange(1.0, 11.0), 0.95)
        10.0
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    flat = values.flatten()
    k = min(max(round(q * flat.numel()), 1), flat.numel())
    return float(flat.kthvalue(k).values)


def lape(
    stats: ActivationProbability,
    *,
    top_rate: float = 0.01,
    filter_rate: float = 0.95,
    activation_bar_ratio: float = 0.95,
) -> LapeResult:
    """Language-specific neurons from per-language activation probabilities.

    Args:
        stats: an :class:`ActivationProbability` over ``mlp.hook_pre`` with one group per
            language (at least two), filled by :func:`lens.collect`.
        top_rate: share of all neurons to keep (lowest entropy first).
        filter_rate: quantile of all p that a neuron's largest p must exceed.
        activation_bar_ratio: quantile of all p above which a kept neuron counts for a
            language.

    Example:
        >>> import lens
        >>> from lens.finders import lape
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> acc = lens.stats.ActivationProbability.for_model(model, ["a", "b"])
        >>> _ = lens.collect(model, [([1, 2, 3], "a"), ([7, 8], "b")], accumulators=[acc])
        >>> res = lape(acc, top_rate=0.02)
        >>> int(res.selected.sum()) <= round(0.02 * 3 * 128)
        True
    """
    if not isinstance(stats, ActivationProbability):
        raise TypeError("lape needs an ActivationProbability accumulator")
    if stats.n_groups < 2:
        raise ValueError("lape needs at least two languages (groups)")
    for name, v in (("top_rate", top_rate), ("filter_rate", filter_rate)):
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {v}")
    p = stats.probability().cpu()  # raises for a language with no tokens
    n_groups, n_layers, width = p.shape
    total = p.sum(0)
    normed = torch.where(total > 0, p / total.clamp_min(1e-300), torch.zeros_like(p))
    plogp = torch.where(normed > 0, normed * normed.clamp_min(1e-300).log(), 0.0)
    entropy = torch.where(total > 0, 0.0 - plogp.sum(0), torch.full_like(total, float("nan")))

    filter_threshold = quantile_value(p, filter_rate)
    bar = quantile_value(p, activation_bar_ratio)
    eligible = p.max(0).values > filter_threshold
    n_keep = round(top_rate * n_layers * width)
    flat_entropy = torch.where(eligible, entropy, torch.full_like(entropy, float("inf"))).flatten()
    order = torch.sort(flat_entropy, stable=True).indices
    keep = [int(i) for i in order[:n_keep] if bool(eligible.flatten()[i])]
    selected = torch.zeros(n_layers * width, dtype=torch.bool)
    selected[keep] = True
    selected = selected.view(n_layers, width)

    layers = list(stats.layers)
    neurons: dict[Label, list[tuple[int, int]]] = {g: [] for g in stats.groups}
    for i in keep:
        s, j = divmod(i, width)
        for k in torch.nonzero(p[:, s, j] > bar).flatten().tolist():
            neurons[stats.groups[k]].append((layers[s], j))
    owners: dict[tuple[int, int], int] = {}
    for pairs in neurons.values():
        for pair in pairs:
            owners[pair] = owners.get(pair, 0) + 1
    exclusive = {g: [x for x in pairs if owners[x] == 1] for g, pairs in neurons.items()}
    per_layer = torch.zeros(n_groups, n_layers, dtype=torch.long)
    pos = {layer: s for s, layer in enumerate(layers)}
    for k, g in enumerate(stats.groups):
        for layer, _ in neurons[g]:
            per_layer[k, pos[layer]] += 1
    return LapeResult(
        groups=list(stats.groups),
        layers=layers,
        probability=p,
        entropy=entropy,
        selected=selected,
        neurons={g: sorted(v) for g, v in neurons.items()},
        exclusive={g: sorted(v) for g, v in exclusive.items()},
        per_layer=per_layer,
        filter_threshold=filter_threshold,
        activation_bar=bar,
    )


def activation_probabilities(
    model: Any,
    corpus: Iterable[Any],
    groups: Sequence[Label],
    *,
    layers: str | int | Sequence[int] = "all",
    site: NeuronSite = "mlp_pre",
    **collect_kwargs: Any,
) -> ActivationProbability:
    """Collect an :class:`ActivationProbability` over every layer's ``site`` (for LAPE).

    ``corpus`` holds ``(text or tokens, language)`` pairs; ``collect_kwargs`` go to
    :func:`lens.collect` (batch_size, checkpoint, progress, ...).
    """
    acc = ActivationProbability.for_model(model, groups, site=site, layers=layers)
    collect(model, corpus, accumulators=[acc], **collect_kwargs)
    return acc
