"""The accumulator base class (the concrete statistics live in :mod:`lens.stats.accumulators`).

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

from interventions.sites import Site
from lens.stats.distributed import all_reduce_sum

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
    default_site: ClassVar[Site] = "mlp_post"
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
        site: Site | None = None,
        layers: str | int | Sequence[int] = "all",
        **kwargs: Any,
    ) -> AccT:
        """Build one over ``site`` (:mod:`interventions.sites`) at each of ``layers`` of ``model``.

        Example:
            >>> import lens
            >>> model = lens.load_model(lens.tiny_config("llama"))
            >>> lens.stats.ActivationProbability.for_model(model, ["en", "fr"])
            ActivationProbability(sites=3, width=128, groups=['en', 'fr'])
        """
        from lens.stats.sites import layer_sites  # noqa: PLC0415  (model-side helper)

        sites, layer_list, width = layer_sites(model, site or cls.default_site, layers=layers)
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
