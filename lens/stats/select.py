"""Which token positions of each prompt the statistics see (mask-aware).

``positions`` is ``"all"`` (every real token, pooled), ``"last"`` (the last real token) or a
list of negative offsets from the end of each prompt, e.g. ``[-3, -2, -1]`` for the last three
real tokens (slot i = offset i). Offsets reaching before a prompt's first token are marked
invalid for that prompt, never read from padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

CollectPositions = str | Sequence[int]


def normalize_positions(positions: CollectPositions) -> str | tuple[int, ...]:
    """Validate a positions spec: ``"all"`` or a tuple of negative offsets."""
    if isinstance(positions, str):
        if positions == "all":
            return "all"
        if positions == "last":
            return (-1,)
        raise ValueError(f"positions must be 'all', 'last' or negative offsets, got {positions!r}")
    if isinstance(positions, int):
        positions = [positions]
    offsets = tuple(positions)
    if not offsets:
        raise ValueError("positions is empty")
    bad = [p for p in offsets if not isinstance(p, int) or isinstance(p, bool) or p >= 0]
    if bad:
        raise ValueError(
            f"position offsets must be negative ints counting from the end of each prompt "
            f"(-1 = last real token), got {bad!r}"
        )
    if len(set(offsets)) != len(offsets):
        raise ValueError(f"positions has duplicates: {list(offsets)}")
    return offsets


@dataclass
class Selection:
    """Per-batch gather plan: ``index [batch, slot]`` into the sequence (None = all)."""

    index: Int[Tensor, "batch slot"] | None
    valid: Bool[Tensor, "batch slot"]

    @property
    def pooled(self) -> bool:
        return self.index is None

    @property
    def n_slots(self) -> int:
        return 1 if self.index is None else int(self.index.shape[1])

    def take(self, act: Float[Tensor, "batch pos width"]) -> Float[Tensor, "batch slot width"]:
        """The selected activations (a view for ``"all"``, a small gather otherwise)."""
        if self.index is None:
            return act
        idx = self.index.to(act.device)[..., None].expand(-1, -1, act.shape[-1])
        return act.gather(1, idx)


def plan(attention_mask: Int[Tensor, "batch pos"], positions: str | tuple[int, ...]) -> Selection:
    """Build the :class:`Selection` of a padded batch (left or right padding).

    Example:
        >>> import torch
        >>> mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
        >>> s = plan(mask, (-3, -1))
        >>> s.index.tolist(), s.valid.tolist()
        ([[0, 2], [0, 2]], [[False, True], [True, True]])
    """
    mask = attention_mask.bool()
    if positions == "all":
        return Selection(None, mask)
    seq = mask.shape[1]
    idx = torch.arange(seq, device=mask.device).expand_as(mask)
    last = torch.where(mask, idx, torch.full_like(idx, -1)).max(dim=1).values
    offsets = torch.tensor(positions, device=mask.device)
    index = last[:, None] + 1 + offsets[None, :]
    inside = index >= 0
    index = index.clamp_min(0)
    valid = inside & mask.gather(1, index)
    return Selection(index, valid)
