"""The Intervention protocol, the to_dict/from_dict registry, and mask-aware positions.

An intervention is plain data (a dataclass) that compiles, against a given model, to a list
of ``(hook_name, fn)`` pairs. ``fn(activation, hook) -> activation | None`` follows the
TransformerLens hook convention. The installer (``lens.apply``) owns the hooks' lifetime.

Positions such as ``"last"`` need the attention mask of the forward being run. The installer
records it per forward in a :class:`ForwardContext` (see :func:`forward_context`), which hook
functions read; interventions therefore never parse hook names or guess padding.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


class HookFn(Protocol):
    """A TransformerLens forward hook: ``fn(activation, hook) -> activation | None``.

    Returning a tensor replaces the activation; returning None leaves it unchanged.
    """

    def __call__(self, act: Tensor, hook: Any, /) -> Tensor | None: ...


HookPair = tuple[str, HookFn]

PositionName = Literal["all", "last"]
Positions = PositionName | int | Sequence[int] | Tensor
"""Which token positions an API reads or writes; one meaning everywhere it is accepted.

* ``"all"``: every position (readers that pool statistics skip padding).
* ``"last"``: the last real token of each row, from the forward's attention mask.
* integers: columns of the padded ``[batch, pos]`` tensor, the same for every row; negative
  values count from the padded end (``-1`` is the last column, which is the last real token
  only under left padding).
* a 1-D integer tensor of length batch: one column per row; a 2-D bool tensor: a mask.

Offsets counted from each prompt's own last real token are a different thing and have their
own name, ``from_end`` (``lens.collect``, ``lens.finders.diff_in_means``).
"""

_REGISTRY: dict[str, Any] = {}  # class name -> class with from_dict


@runtime_checkable
class Intervention(Protocol):
    """Anything with ``hooks(model) -> list[(hook_name, fn)]``.

    ``hooks`` must validate against the model and raise *before* returning when the
    intervention does not fit it (wrong layer, wrong size): nothing is installed then.
    """

    def hooks(self, model: Any) -> list[HookPair]: ...


def register(cls: type) -> type:
    """Class decorator: make ``cls`` reachable from :func:`from_dict` by its name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def from_dict(spec: dict[str, Any]) -> Any:
    """Rebuild an intervention from ``obj.to_dict()`` (JSON-safe dict with a ``"type"`` key).

    Example:
        >>> import torch
        >>> from interventions import DirectionAblation, from_dict
        >>> a = DirectionAblation(torch.ones(4))
        >>> from_dict(a.to_dict()).to_dict() == a.to_dict()
        True
    """
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError("from_dict expects a dict with a 'type' key, as written by to_dict()")
    kind = spec["type"]
    if kind not in _REGISTRY:
        raise ValueError(f"unknown intervention type {kind!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[kind].from_dict(spec)


@dataclass
class ForwardContext:
    """What hooks may know about the forward in flight: its attention mask and input shape."""

    attention_mask: Int[Tensor, "batch pos"] | None = None

    def last_positions(self, batch: int, seq: int, device: torch.device) -> Int[Tensor, " batch"]:
        """Index of the last real token per row, from the mask (right or left padding).

        A forward without an attention mask has no padding: the last column. A mask whose
        shape differs from the activation's ``(batch, seq)`` raises instead of guessing.
        """
        mask = self.attention_mask
        if mask is None:
            return torch.full((batch,), seq - 1, dtype=torch.long, device=device)
        if tuple(mask.shape) != (batch, seq):
            raise ValueError(
                f"the forward's attention mask has shape {tuple(mask.shape)} but the activation "
                f"is [batch={batch}, pos={seq}]: positions='last' cannot be located; pass the "
                "mask that belongs to the tokens (model(tokens, attention_mask=mask))"
            )
        return last_real_positions(mask.to(device))


def last_real_positions(attention_mask: Int[Tensor, "batch pos"]) -> Int[Tensor, " batch"]:
    """Column of the last real token of each row, for any padding side.

    Example:
        >>> import torch
        >>> last_real_positions(torch.tensor([[0, 1, 1], [1, 1, 0]])).tolist()
        [2, 1]
    """
    mask = attention_mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError("a row of the batch has no real tokens (its attention mask is all 0)")
    idx = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask, idx, torch.full_like(idx, -1)).max(dim=1).values


_CONTEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def forward_context(model: Any) -> ForwardContext:
    """The (single, mutable) forward context of ``model``."""
    ctx = _CONTEXTS.get(model)
    if ctx is None:
        ctx = ForwardContext()
        _CONTEXTS[model] = ctx
    return ctx


def validate_positions(positions: Positions) -> Positions:
    """Check a positions spec at construction time; returns it unchanged."""
    if isinstance(positions, str):
        if positions not in ("all", "last"):
            raise ValueError(f"positions must be 'all', 'last' or indices, got {positions!r}")
        return positions
    if isinstance(positions, Tensor):
        if positions.dtype not in (torch.int64, torch.int32, torch.bool):
            raise ValueError("positions tensor must hold integer indices or a boolean mask")
        return positions
    if isinstance(positions, int):
        return positions
    items = list(positions)
    if not items:
        raise ValueError("positions is empty: nothing would be changed")
    if not all(isinstance(p, int) for p in items):
        raise ValueError(f"positions must be integers, got {items!r}")
    return positions


def position_mask(
    model: Any, positions: Positions, act: Float[Tensor, "batch pos ..."]
) -> Bool[Tensor, "batch pos"] | None:
    """Boolean [batch, pos] mask of the positions to touch, or None for all positions.

    See :data:`Positions` for the meaning of each form.
    """
    if isinstance(positions, str) and positions == "all":
        return None
    batch, seq = act.shape[0], act.shape[1]
    mask = torch.zeros(batch, seq, dtype=torch.bool, device=act.device)
    rows = torch.arange(batch, device=act.device)
    if isinstance(positions, str):  # "last"
        mask[rows, forward_context(model).last_positions(batch, seq, act.device)] = True
        return mask
    if isinstance(positions, Tensor):
        pos = positions.to(act.device)
        if pos.dtype == torch.bool:
            if pos.shape != (batch, seq):
                raise ValueError(f"bool positions shape {tuple(pos.shape)} != {(batch, seq)}")
            return pos
        if pos.ndim == 1 and pos.shape[0] == batch:
            mask[rows, pos.long()] = True
            return mask
        mask[:, pos.long().flatten()] = True
        return mask
    idx = [positions] if isinstance(positions, int) else list(positions)
    bad = [p for p in idx if not -seq <= p < seq]
    if bad:
        raise IndexError(f"positions {bad} out of range for sequence length {seq}")
    mask[:, idx] = True
    return mask


def tensor_to_list(t: Tensor) -> list:
    """JSON-safe nested lists that round-trip float32 exactly (via Python floats)."""
    return t.detach().cpu().tolist()


def positions_to_json(positions: Positions) -> Any:
    if isinstance(positions, Tensor):
        return {"tensor": tensor_to_list(positions), "dtype": str(positions.dtype)}
    if isinstance(positions, (str, int)):
        return positions
    return list(positions)


def positions_from_json(spec: Any) -> Positions:
    if isinstance(spec, dict):
        dtype = torch.bool if spec["dtype"] == "torch.bool" else torch.long
        return torch.tensor(spec["tensor"], dtype=dtype)
    return spec


def layer_count(model: Any) -> int:
    return int(model.cfg.n_layers)


def check_layers(model: Any, layers: Sequence[int], *, what: str) -> None:
    n = layer_count(model)
    bad = [layer for layer in layers if not 0 <= layer < n]
    if bad:
        raise ValueError(f"{what}: layers {bad} out of range; this model has layers 0..{n - 1}")
