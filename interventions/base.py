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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

HookFn = Callable[..., Tensor | None]
HookPair = tuple[str, HookFn]
Positions = str | int | Sequence[int] | Tensor

_REGISTRY: dict[str, type] = {}


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

    attention_mask: Tensor | None = None

    def last_positions(self, batch: int, seq: int, device: torch.device) -> Tensor:
        """Index of the last real token per row, from the mask (right or left padding)."""
        mask = self.attention_mask
        if mask is None or mask.shape != (batch, seq):
            return torch.full((batch,), seq - 1, dtype=torch.long, device=device)
        mask = mask.to(device)
        idx = torch.arange(seq, device=device).expand(batch, seq)
        return torch.where(mask.bool(), idx, torch.full_like(idx, -1)).max(dim=1).values


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


def position_mask(positions: Positions, act: Tensor, model: Any) -> Tensor | None:
    """Boolean [batch, pos] mask of the positions to touch, or None for all positions.

    ``"last"`` is the last real token of each row (from the forward's attention mask);
    integers index every row alike (negative counts from the end of the padded row);
    a 1-D tensor of length batch gives one index per row; a 2-D bool tensor is used as is.
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


def check_layers(layers: Sequence[int], model: Any, what: str) -> None:
    n = layer_count(model)
    bad = [layer for layer in layers if not 0 <= layer < n]
    if bad:
        raise ValueError(f"{what}: layers {bad} out of range; this model has layers 0..{n - 1}")
