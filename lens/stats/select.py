"""Which token positions of each prompt the statistics see (mask-aware).

Two ways to choose, never both:

* ``positions`` (one meaning across lens, see ``interventions.base.Positions``): ``"all"``
  (every real token, pooled into one slot), ``"last"`` (the last real token) or integer
  columns of the padded batch (negative counts from the padded end), all of one sign; slots
  come in increasing column order, as everywhere else.
  A column that falls on padding, or outside a shorter batch, is invalid for that row.
* ``from_end``: offsets counted from each prompt's own last real token, e.g. ``[-3, -2, -1]``
  for the last three real tokens (slot i = offset i) under any padding. Offsets reaching
  before a prompt's first token are marked invalid for that prompt, never read from padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interventions.base import Positions, last_real_positions

SlotKind = Literal["all", "from_end", "columns"]


@dataclass(frozen=True)
class SlotSpec:
    """A validated choice of positions: ``kind`` and its integers (offsets or columns)."""

    kind: SlotKind
    indices: tuple[int, ...] = ()

    @property
    def n_slots(self) -> int:
        return 1 if self.kind == "all" else len(self.indices)

    def key(self) -> Any:
        """JSON form for checkpoint fingerprints (from_end keeps its historical form)."""
        if self.kind == "all":
            return "all"
        if self.kind == "from_end":
            return list(self.indices)
        return {"columns": list(self.indices)}


def _ints(values: Any, what: str) -> tuple[int, ...]:
    if isinstance(values, int) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (str, bytes, Tensor)) or not isinstance(values, Sequence):
        raise ValueError(f"{what} must be an int or a list of ints, got {values!r}")
    items = tuple(values)
    if not items:
        raise ValueError(f"{what} is empty")
    bad = [p for p in items if not isinstance(p, int) or isinstance(p, bool)]
    if bad:
        raise ValueError(f"{what} must be ints, got {bad!r}")
    if len(set(items)) != len(items):
        raise ValueError(f"{what} has duplicates: {list(items)}")
    return items


def normalize_positions(
    positions: Positions | None = "all", from_end: Sequence[int] | int | None = None
) -> SlotSpec:
    """Validate ``positions`` or ``from_end`` (exactly one of them) into a :class:`SlotSpec`.

    Example:
        >>> normalize_positions("last"), normalize_positions(None, from_end=[-2, -1])
        (SlotSpec(kind='from_end', indices=(-1,)), SlotSpec(kind='from_end', indices=(-2, -1)))
    """
    if from_end is not None:
        if positions not in (None, "all"):
            raise ValueError("give positions or from_end, not both")
        offsets = _ints(from_end, "from_end")
        bad = [p for p in offsets if p >= 0]
        if bad:
            raise ValueError(
                f"from_end offsets must be negative ints counting from each prompt's last real "
                f"token (-1 = the last real token), got {bad!r}"
            )
        return SlotSpec("from_end", offsets)
    if positions is None or (isinstance(positions, str) and positions == "all"):
        return SlotSpec("all")
    if isinstance(positions, str):
        if positions == "last":
            return SlotSpec("from_end", (-1,))
        raise ValueError(f"positions must be 'all', 'last' or integer columns, got {positions!r}")
    if isinstance(positions, Tensor):
        raise ValueError(
            "positions tensors (one index per row) are not supported here: batches differ; "
            "use 'last', integer columns, or from_end offsets"
        )
    cols = _ints(positions, "positions")
    if min(cols) < 0 <= max(cols):
        raise ValueError(
            f"positions {list(cols)} mix columns from the start and from the padded end: their "
            "order would change with each batch's width; use one sign (or from_end offsets)"
        )
    return SlotSpec("columns", tuple(sorted(cols)))  # increasing columns, as Probe/logit_lens


@dataclass
class Selection:
    """Per-batch gather plan: ``index [batch, slot]`` into the sequence (None = all)."""

    index: Int[Tensor, "batch slot"] | None
    valid: Bool[Tensor, "batch slot"]

    @property
    def pooled(self) -> bool:
        return self.index is None

    def take(self, act: Float[Tensor, "batch pos width"]) -> Float[Tensor, "batch slot width"]:
        """The selected activations (a view for ``"all"``, a small gather otherwise)."""
        if self.index is None:
            return act
        idx = self.index.to(act.device)[..., None].expand(-1, -1, act.shape[-1])
        return act.gather(1, idx)


def plan(attention_mask: Int[Tensor, "batch pos"], spec: SlotSpec) -> Selection:
    """Build the :class:`Selection` of a padded batch (left or right padding).

    Example:
        >>> import torch
        >>> mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
        >>> s = plan(mask, SlotSpec("from_end", (-3, -1)))
        >>> s.index.tolist(), s.valid.tolist()
        ([[0, 2], [0, 2]], [[False, True], [True, True]])
    """
    mask = attention_mask.bool()
    if spec.kind == "all":
        return Selection(None, mask)
    batch, seq = mask.shape
    given = torch.tensor(spec.indices, device=mask.device)
    if spec.kind == "from_end":
        index = last_real_positions(mask)[:, None] + 1 + given[None, :]
        inside = index >= 0
    else:  # columns of the padded batch, negative from its end
        cols = torch.where(given < 0, given + seq, given)
        inside = ((cols >= 0) & (cols < seq))[None, :].expand(batch, -1)
        index = cols[None, :].expand(batch, -1)
    index = index.clamp(0, seq - 1)
    valid = inside & mask.gather(1, index)
    return Selection(index, valid)
