"""Mergeable streaming accumulators of activation statistics, kept in float64.

The concrete statistics: :class:`MomentStats`, :class:`ActivationProbability`,
:class:`PositionMeans`, :class:`ExampleMeans`. Their base class, :class:`Accumulator`, lives in
:mod:`lens.stats.accumulator_base` (re-exported here) and documents the shared interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from lens.stats.accumulator_base import Accumulator, Label
from lens.stats.distributed import all_gather_rows, world_size

__all__ = [
    "Accumulator",
    "ActivationProbability",
    "ExampleMeans",
    "Label",
    "MomentStats",
    "PositionMeans",
]


class MomentStats(Accumulator):
    """Per-group token counts, sums and sums of squares of every neuron.

    State: ``count [group, site]`` (int64), ``sum`` and ``sumsq [group, site, width]``
    (float64). ``mean()`` and ``var()`` (population variance) derive from them.
    """

    kind = "MomentStats"
    _fields = ("count", "sum", "sumsq")

    def _allocate(self) -> None:
        g, s, w = self.n_groups, self.n_sites, self.width
        self.count = torch.zeros(g, s, dtype=torch.long)
        self.sum = torch.zeros(g, s, w, dtype=torch.float64)
        self.sumsq = torch.zeros(g, s, w, dtype=torch.float64)

    def update(self, site: int, values: Tensor, valid: Tensor, pooled: bool) -> None:
        self._check(site, values)
        x = values.to(self.sum.device, torch.float64) * valid.to(self.sum.device)[..., None]
        self.count[:, site] += self._per_group(valid.sum(1).to(self.count.device))
        self.sum[:, site] += self._per_group(x.sum(1))
        self.sumsq[:, site] += self._per_group(x.square().sum(1))

    def mean(self) -> Float[Tensor, "group site width"]:
        """Per-group mean of every neuron (raises if a group saw no tokens)."""
        self._require_data(self.count)
        return self.sum / self.count[..., None]

    def var(self) -> Float[Tensor, "group site width"]:
        """Per-group population variance (E[x^2] - E[x]^2, clamped at 0)."""
        mean = self.mean()
        return (self.sumsq / self.count[..., None] - mean.square()).clamp_min(0.0)


class ActivationProbability(Accumulator):
    """Per-group counts of tokens and of tokens where each neuron is active (value > 0).

    State: ``count [group, site]`` and ``active [group, site, width]`` (int64, exact).
    ``probability()`` is ``active / count``: the share of a group's tokens where the neuron
    is active. For LAPE use the MLP pre-activation (``mlp.hook_pre``): see
    :mod:`lens.finders.lape`.
    """

    kind = "ActivationProbability"
    default_site = "mlp_pre"
    _fields = ("count", "active")

    def _allocate(self) -> None:
        g, s, w = self.n_groups, self.n_sites, self.width
        self.count = torch.zeros(g, s, dtype=torch.long)
        self.active = torch.zeros(g, s, w, dtype=torch.long)

    def update(self, site: int, values: Tensor, valid: Tensor, pooled: bool) -> None:
        self._check(site, values)
        # per-row counts as a batched matmul of 0/1 floats: exact (integers < 2**24) and
        # about twice as fast as a boolean sum over positions
        weights = valid.to(values.device, torch.float32)[:, None, :]
        per_row = torch.bmm(weights, (values > 0).to(torch.float32)).squeeze(1)
        self.count[:, site] += self._per_group(valid.sum(1).to(self.count.device))
        self.active[:, site] += self._per_group(per_row.to(self.active.device)).round().long()

    def probability(self) -> Float[Tensor, "group site width"]:
        """Share of each group's tokens where each neuron is > 0 (float64)."""
        self._require_data(self.count)
        return self.active.double() / self.count[..., None]


class PositionMeans(Accumulator):
    """Per-group running means at fixed position slots (e.g. the last k tokens of a prompt).

    With ``lens.collect(positions=[-2, -1])`` slot i is offset ``positions[i]`` from the end of
    each prompt (mask-aware); with ``positions="all"`` there is one slot pooling every token.

    State: ``count [group, site, slot]`` (int64), ``sum [group, site, slot, width]`` (float64).
    """

    kind = "PositionMeans"
    default_site = "resid_pre"
    _fields = ("count", "sum")

    def __init__(
        self,
        sites: Sequence[str],
        width: int,
        groups: Sequence[Label],
        n_positions: int = 1,
        layers: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(n_positions, int) or n_positions < 1:
            raise ValueError(f"n_positions must be a positive int, got {n_positions!r}")
        self.n_positions = n_positions
        super().__init__(sites, width, groups, layers)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "n_positions": self.n_positions}

    def _allocate(self) -> None:
        g, s, p, w = self.n_groups, self.n_sites, self.n_positions, self.width
        self.count = torch.zeros(g, s, p, dtype=torch.long)
        self.sum = torch.zeros(g, s, p, w, dtype=torch.float64)

    def update(self, site: int, values: Tensor, valid: Tensor, pooled: bool) -> None:
        self._check(site, values)
        x = values.to(self.sum.device, torch.float64) * valid.to(self.sum.device)[..., None]
        counts = valid.long().to(self.count.device)
        if pooled:
            x, counts = x.sum(1, keepdim=True), counts.sum(1, keepdim=True)
        if x.shape[1] != self.n_positions:
            raise ValueError(
                f"collect selected {x.shape[1]} position slots, but this PositionMeans has "
                f"n_positions={self.n_positions}"
            )
        self.count[:, site] += self._per_group(counts)
        self.sum[:, site] += self._per_group(x)

    def mean(self) -> Float[Tensor, "group site slot width"]:
        """Per-group mean at every slot (raises if a group has no token at some slot)."""
        self._require_data(self.count, "tokens at some position slot")
        return self.sum / self.count[..., None]


class ExampleMeans(Accumulator):
    """Per-example mean response of every neuron, for ranking-based scores (average precision).

    Each example's response is its mean activation over the selected positions (all real
    tokens by default). This is not constant-size: it stores one ``[site, width]`` float64
    row per example, up to ``max_examples`` rows, allocated up front
    (``max_examples * n_sites * width * 8`` bytes). Going past the cap raises instead of
    silently dropping data; raise the cap or subsample the corpus.

    State: ``ids [cap]`` (global example index, -1 when unused), ``group [cap]``,
    ``values [cap, site, width]``, ``n [1]`` (rows used). Merging and ``all_reduce``
    concatenate rows and sort them by example id, so the result does not depend on how the
    data was split.
    """

    kind = "ExampleMeans"
    _fields = ("ids", "group", "values", "n")

    def __init__(
        self,
        sites: Sequence[str],
        width: int,
        groups: Sequence[Label],
        max_examples: int,
        layers: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(max_examples, int) or max_examples < 1:
            raise ValueError(f"max_examples must be a positive int, got {max_examples!r}")
        self.max_examples = max_examples
        super().__init__(sites, width, groups, layers)
        self._rows: Tensor | None = None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "max_examples": self.max_examples}

    def _allocate(self) -> None:
        cap, s, w = self.max_examples, self.n_sites, self.width
        self.ids = torch.full((cap,), -1, dtype=torch.long)
        self.group = torch.full((cap,), -1, dtype=torch.long)
        self.values = torch.zeros(cap, s, w, dtype=torch.float64)
        self.n = torch.zeros(1, dtype=torch.long)

    @property
    def size(self) -> int:
        """Number of examples stored."""
        return int(self.n.item())

    def _overflow(self, needed: int) -> ValueError:
        return ValueError(
            f"ExampleMeans holds at most max_examples={self.max_examples} examples, "
            f"{needed} needed: raise max_examples or subsample the corpus"
        )

    def begin_batch(self, groups: Tensor, example_ids: Tensor) -> None:
        super().begin_batch(groups, example_ids)
        start, b = self.size, int(groups.shape[0])
        if start + b > self.max_examples:
            raise self._overflow(start + b)
        self._rows = torch.arange(start, start + b, device=self.device)
        self.ids[start : start + b] = example_ids.to(self.device)
        self.group[start : start + b] = groups.to(self.device)
        self.n += b

    def update(self, site: int, values: Tensor, valid: Tensor, pooled: bool) -> None:
        self._check(site, values)
        counts = valid.sum(1).to(self.device)
        if bool((counts == 0).any()):
            raise ValueError("an example has no tokens at the chosen positions")
        x = values.to(self.device, torch.float64) * valid.to(self.device)[..., None]
        self.values[self._rows, site] = x.sum(1) / counts[:, None]

    def _set_rows(self, ids: Tensor, group: Tensor, values: Tensor) -> None:
        if ids.shape[0] > self.max_examples:
            raise self._overflow(int(ids.shape[0]))
        order = torch.argsort(ids)
        ids, group, values = ids[order], group[order], values[order]
        if bool((ids[1:] == ids[:-1]).any()):
            raise ValueError("the same example id appears twice: were the data split overlapping?")
        self._allocate()
        self.to(values.device)
        k = ids.shape[0]
        self.ids[:k], self.group[:k], self.values[:k] = ids, group, values
        self.n[0] = k

    def merge(self, other: Accumulator) -> ExampleMeans:
        self._check_compatible(other)
        if not isinstance(other, ExampleMeans):
            raise TypeError(f"cannot merge {type(other).__name__} into ExampleMeans")
        a, b = self.size, other.size
        dev = self.device
        self._set_rows(
            torch.cat([self.ids[:a], other.ids[:b].to(dev)]),
            torch.cat([self.group[:a], other.group[:b].to(dev)]),
            torch.cat([self.values[:a], other.values[:b].to(dev)]),
        )
        return self

    def all_reduce(self, group: Any = None) -> ExampleMeans:
        """Gather every process's rows (ordered by example id) into every process."""
        if world_size(group) == 1:
            return self
        a = self.size
        self._set_rows(
            all_gather_rows(self.ids[:a], group),
            all_gather_rows(self.group[:a], group),
            all_gather_rows(self.values[:a], group),
        )
        return self

    def sorted(self) -> tuple[Int[Tensor, " n"], Int[Tensor, " n"], Float[Tensor, "n site width"]]:
        """``(ids, group, values)`` of the stored examples, ordered by example id."""
        a = self.size
        order = torch.argsort(self.ids[:a])
        return self.ids[:a][order], self.group[:a][order], self.values[:a][order]
