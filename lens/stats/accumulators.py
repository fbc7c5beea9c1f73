"""Mergeable streaming accumulators of activation statistics, kept in float64.

Each accumulator watches one or more hook sites (all of the same width) and keeps per-group
sufficient statistics whose size never depends on how much data went through it (except
:class:`ExampleMeans`, which is bounded by an explicit cap). ``lens.collect`` feeds them; they
can also be fed by hand::

    acc = ActivationProbability(["blocks.0.mlp.hook_pre"], width=8, groups=["en", "fr"])
    acc.begin_batch(acc.group_indices(["en", "fr"]), torch.tensor([0, 1]))
    acc.update(0, acts, valid, pooled=True)      # acts [batch, pos, width], valid [batch, pos]

Every accumulator has ``merge`` (add another's data), ``state_dict``/``load_state_dict``
(tensors only; the layout is in ``config()``), ``all_reduce(group)`` over torch.distributed,
``reset``, ``copy`` and ``n_elements`` (the stored element count).
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar, TypeVar, cast

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from lens.stats.distributed import all_gather_rows, all_reduce_sum, world_size

Label = str | int
AccT = TypeVar("AccT", bound="Accumulator")


def _check_groups(groups: Sequence[Hashable]) -> tuple[Label, ...]:
    groups = tuple(groups)  # checked below to hold str | int only
    if not groups:
        raise ValueError("groups is empty: give at least one group label")
    bad = [g for g in groups if not isinstance(g, (str, int)) or isinstance(g, bool)]
    if bad:
        raise ValueError(f"group labels must be str or int, got {bad!r}")
    if len(set(groups)) != len(groups):
        raise ValueError(f"group labels must be unique, got {list(groups)!r}")
    return cast(tuple[Label, ...], groups)


class Accumulator:
    """Base class: per-group statistics over ``sites`` (hook names), each ``width`` wide.

    Subclasses declare ``_fields`` (their state tensors) and implement ``update``.

    Args:
        sites: hook names, e.g. ``["blocks.0.mlp.hook_pre", "blocks.1.mlp.hook_pre"]``.
        width: the last dimension of every site's activation.
        groups: group labels (str or int), e.g. languages or relations.
        layers: optional layer number of each site (for reporting; default 0..S-1).
    """

    kind: ClassVar[str] = "Accumulator"
    default_site: ClassVar[str] = "mlp.hook_post"
    _fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        sites: Sequence[str],
        width: int,
        groups: Sequence[Label],
        layers: Sequence[int] | None = None,
    ) -> None:
        self.sites = tuple(sites)
        if not self.sites or not all(isinstance(s, str) for s in self.sites):
            raise ValueError("sites must be a non-empty list of hook names")
        if len(set(self.sites)) != len(self.sites):
            raise ValueError(f"sites has duplicates: {list(self.sites)}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        self.width = width
        self.groups = _check_groups(groups)
        self._index = {g: i for i, g in enumerate(self.groups)}
        self.layers = tuple(layers) if layers is not None else tuple(range(len(self.sites)))
        if len(self.layers) != len(self.sites):
            raise ValueError(f"{len(self.layers)} layers for {len(self.sites)} sites")
        self._batch_groups: Tensor | None = None
        self._allocate()

    @classmethod
    def for_model(
        cls: type[AccT],
        model: Any,
        groups: Sequence[Label],
        *,
        site: str | None = None,
        layers: str | int | Sequence[int] = "all",
        **kwargs: Any,
    ) -> AccT:
        """Build one over ``blocks.{l}.{site}`` for each layer of ``model``.

        Example:
            >>> import lens
            >>> model = lens.load_model(lens.tiny_config("llama"))
            >>> ActivationProbability.for_model(model, ["en", "fr"])
            ActivationProbability(sites=3, width=128, groups=['en', 'fr'])
        """
        from lens.stats.sites import layer_sites  # noqa: PLC0415  (model-side helper)

        sites, layer_list, width = layer_sites(model, site or cls.default_site, layers)
        return cls(sites, width, groups, layers=layer_list, **kwargs)

    # -- layout -------------------------------------------------------------------------
    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    def _allocate(self) -> None:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-safe description of the layout (what a state dict must match)."""
        return {
            "kind": self.kind,
            "sites": list(self.sites),
            "width": self.width,
            "groups": list(self.groups),
            "layers": list(self.layers),
        }

    @property
    def device(self) -> torch.device:
        return getattr(self, self._fields[0]).device

    def to(self, device: torch.device | str) -> Accumulator:
        """Move the state to ``device`` (in place); returns self."""
        for name in self._fields:
            setattr(self, name, getattr(self, name).to(device))
        return self

    @property
    def n_elements(self) -> int:
        """Total number of stored elements (constant in the amount of data seen)."""
        return sum(getattr(self, name).numel() for name in self._fields)

    # -- feeding ------------------------------------------------------------------------
    def group_indices(self, labels: Sequence[Label]) -> Int[Tensor, " batch"]:
        """Group index of every label; unknown labels raise ValueError."""
        try:
            return torch.tensor([self._index[label] for label in labels], dtype=torch.long)
        except (KeyError, TypeError):
            bad = [lab for lab in labels if not isinstance(lab, Hashable) or lab not in self._index]
            raise ValueError(
                f"labels {bad[:5]!r} are not groups of this {self.kind}; its groups are "
                f"{list(self.groups)!r}"
            ) from None

    def begin_batch(
        self, groups: Int[Tensor, " batch"], example_ids: Int[Tensor, " batch"]
    ) -> None:
        """Announce the next batch: each row's group index and global example id."""
        self._batch_groups = groups.to(self.device)

    def update(
        self,
        site: int,
        values: Float[Tensor, "batch pos width"],
        valid: Bool[Tensor, "batch pos"],
        pooled: bool,
    ) -> None:
        """Add one site's activations. ``valid`` marks the positions that count; ``pooled``
        says the position axis is pooled (``"all"`` tokens) rather than fixed slots."""
        raise NotImplementedError

    def _check(self, site: int, values: Tensor) -> None:
        if self._batch_groups is None:
            raise RuntimeError("begin_batch() must be called before update()")
        if values.shape[-1] != self.width:
            raise ValueError(
                f"site {self.sites[site]!r} has width {values.shape[-1]}, but this {self.kind} "
                f"was built for width {self.width}"
            )

    def _per_group(self, per_row: Tensor) -> Tensor:
        """Sum rows ``[batch, ...]`` into ``[groups, ...]`` by the batch's group index."""
        if self._batch_groups is None:
            raise RuntimeError("update() called before begin_batch()")
        out = per_row.new_zeros((self.n_groups, *per_row.shape[1:]))
        return out.index_add_(0, self._batch_groups, per_row)

    # -- combining and saving -----------------------------------------------------------
    def _check_compatible(self, other: Accumulator) -> None:
        if type(other) is not type(self) or other.config() != self.config():
            raise ValueError(
                f"cannot combine {other.kind} {other.config()} with {self.kind} {self.config()}"
            )

    def merge(self, other: Accumulator) -> Accumulator:
        """Add ``other``'s data to this accumulator (in place); returns self."""
        self._check_compatible(other)
        for name in self._fields:
            getattr(self, name).add_(getattr(other, name).to(self.device))
        return self

    def all_reduce(self, group: Any = None) -> Accumulator:
        """Sum the state over the processes of a torch.distributed group (in place).

        A no-op when torch.distributed is not initialised. Returns self.
        """
        for name in self._fields:
            setattr(self, name, all_reduce_sum(getattr(self, name), group))
        return self

    def state_dict(self) -> dict[str, Tensor]:
        """The state tensors (detached CPU copies)."""
        return {name: getattr(self, name).detach().cpu().clone() for name in self._fields}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Replace the state with ``state`` (shapes and dtypes must match)."""
        missing = set(self._fields) - set(state)
        extra = set(state) - set(self._fields)
        if missing or extra:
            raise ValueError(f"state keys differ: missing {sorted(missing)}, extra {sorted(extra)}")
        for name in self._fields:
            mine, theirs = getattr(self, name), state[name]
            if theirs.shape != mine.shape or theirs.dtype != mine.dtype:
                raise ValueError(
                    f"state {name!r} is {tuple(theirs.shape)} {theirs.dtype}, expected "
                    f"{tuple(mine.shape)} {mine.dtype}"
                )
        for name in self._fields:
            setattr(self, name, state[name].to(self.device).clone())

    def reset(self) -> None:
        """Forget all data (keeps the layout and device)."""
        device = self.device
        self._allocate()
        self.to(device)

    def copy(self) -> Accumulator:
        """An independent deep copy."""
        return _copy.deepcopy(self)

    def _require_data(self, count: Tensor, what: str = "tokens") -> None:
        """Raise if a group saw nothing (count has the group axis first)."""
        per_group = count.reshape(self.n_groups, -1)
        empty = [g for g, row in zip(self.groups, per_group) if bool((row == 0).any())]
        if empty:
            raise ValueError(
                f"groups {empty!r} have no {what} in this {self.kind}: every group needs data "
                "(check the corpus labels and positions)"
            )

    def __repr__(self) -> str:
        return (
            f"{self.kind}(sites={len(self.sites)}, width={self.width}, "
            f"groups={list(self.groups)!r})"
        )


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
    default_site = "mlp.hook_pre"
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
    default_site = "hook_resid_pre"
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
