"""Private helpers shared by the intervention dataclasses: input checks, exact tensor <-> JSON,
and applying an edit at chosen positions only."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from interventions.base import HookFn, Positions, position_mask

_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (torch.float64, torch.float32, torch.float16, torch.bfloat16)
}


def as_vector(value: Any, what: str, size: int | None = None) -> Tensor:
    """A finite 1-D float tensor (a copy, detached); clear errors otherwise."""
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"{what} must be a 1-D tensor of numbers, got {type(value).__name__}"
        ) from exc
    if t.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{what} is empty")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{what} must hold numbers, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} contains NaN or inf")
    if size is not None and t.shape[0] != size:
        raise ValueError(f"{what} has length {t.shape[0]}, expected {size}")
    return t.detach().clone()


def unit(vector: Tensor, what: str) -> Tensor:
    """``vector / |vector|`` computed in float64, returned in float32 (or float64 if given)."""
    norm = vector.double().norm()
    if not bool(norm > 0):
        raise ValueError(f"{what} has zero norm: there is no direction to use")
    out = vector.double() / norm
    return out.to(torch.float64 if vector.dtype == torch.float64 else torch.float32)


def as_layer(value: Any, what: str, *, from_end: bool = False) -> int:
    """An int (numpy/torch ints accepted); ``>= 0`` unless ``from_end`` allows a layer
    counted from the end (negative; :func:`interventions.sites.resolve_layers` resolves it).
    A bool is refused: ``True`` is not layer 1."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer layer, got {value!r}")
    if not isinstance(value, int):
        try:
            if isinstance(value, str) or int(value) != value:
                raise TypeError
            value = int(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{what} must be an integer layer, got {value!r}") from exc
    if value < 0 and not from_end:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value


def as_layers(value: str | int | Sequence[int], what: str = "layers") -> str | list[int]:
    """``"all"``, or a non-empty, duplicate-free list of ints (negative: counted from the end,
    resolved once the model is known)."""
    if isinstance(value, str):
        if value != "all":
            raise ValueError(f"{what} must be 'all', an int or a list of ints, got {value!r}")
        return value
    if isinstance(value, int):
        return [as_layer(value, what, from_end=True)]  # as_layer rejects bools
    if not isinstance(value, Sequence):
        raise TypeError(f"{what} must be 'all', an int or a list of ints, got {value!r}")
    items = [as_layer(v, what, from_end=True) for v in value]
    if not items:
        raise ValueError(f"{what} is empty: nothing would be changed")
    if len(set(items)) != len(items):
        raise ValueError(f"{what} has duplicates: {items}")
    return items


def check_d_model(vector: Tensor, model: Any, what: str) -> None:
    d = int(model.cfg.d_model)
    if vector.shape[-1] != d:
        raise ValueError(f"{what} has length {vector.shape[-1]}, but this model has d_model={d}")


def tensor_to_json(t: Tensor) -> dict[str, Any]:
    """Exact JSON form: Python floats hold every float32/16/bf16 value exactly."""
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in _DTYPES:
        raise TypeError(f"cannot serialise dtype {t.dtype}")
    return {"dtype": dtype, "shape": list(t.shape), "data": t.detach().cpu().reshape(-1).tolist()}


def tensor_from_json(spec: dict[str, Any]) -> Tensor:
    dtype = _DTYPES.get(str(spec.get("dtype")))
    if dtype is None:
        raise ValueError(f"unknown tensor dtype {spec.get('dtype')!r}")
    return torch.tensor(spec["data"], dtype=dtype).reshape(spec["shape"])


def positions_to_json(positions: Positions) -> Any:
    """A positions spec as JSON (a tensor as nested lists with its dtype)."""
    if isinstance(positions, Tensor):
        return {"tensor": positions.detach().cpu().tolist(), "dtype": str(positions.dtype)}
    if isinstance(positions, (str, int)):
        return positions
    return list(positions)


def positions_from_json(spec: Any) -> Positions:
    """The inverse of :func:`positions_to_json`."""
    if isinstance(spec, dict):
        dtype = torch.bool if spec["dtype"] == "torch.bool" else torch.long
        return torch.tensor(spec["tensor"], dtype=dtype)
    return spec


def finite_float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return float(value)


def at_positions(positions: Positions, model: Any, edit: Callable[[Tensor], Tensor]) -> HookFn:
    """A hook fn applying ``edit`` to a [batch, pos, ...] activation at ``positions`` only.

    ``edit`` must act on the trailing dimensions alone (it sees ``[n, ...]`` for a subset)."""
    if isinstance(positions, str) and positions == "all":

        def hook_all(act: Tensor, hook: Any) -> Tensor:
            return edit(act)

        return hook_all

    def hook_some(act: Tensor, hook: Any) -> Tensor:
        mask = position_mask(model, positions, act)
        if mask is None:
            return edit(act)
        where = mask.nonzero(as_tuple=True)  # (rows, positions): edit only those vectors
        out = act.clone()
        out[where] = edit(act[where])
        return out

    return hook_some
