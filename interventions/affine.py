"""Affine maps of the residual stream, ``h -> W h + b``, stored as plain tensors.

One home for the map that a linear shortcut (one map, layer l -> last layer) and a tuned lens
(one map per layer, layer l -> its readout) both apply: checked weights, identity
construction, application in the activation's device and dtype (with an optional scale,
the shortcut's ``beta``), and safetensors keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


@dataclass(eq=False)
class Affine:
    """``h -> weight @ h + bias`` on the last dimension; ``weight`` is ``[d_out, d_in]``.

    Example:
        >>> import torch
        >>> a = Affine.identity(3)
        >>> a(torch.tensor([1.0, 2.0, 3.0])).tolist()
        [1.0, 2.0, 3.0]
    """

    weight: Tensor
    bias: Tensor

    def __post_init__(self) -> None:
        self.weight, self.bias = checked(self.weight, self.bias)

    @classmethod
    def identity(cls, d: int, dtype: torch.dtype = torch.float32) -> Affine:
        """The identity map on ``d`` dimensions (zero bias)."""
        return cls(torch.eye(d, dtype=dtype), torch.zeros(d, dtype=dtype))

    @property
    def d_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def d_out(self) -> int:
        return int(self.weight.shape[0])

    def __call__(
        self, h: Float[Tensor, "... d_in"], scale: float = 1.0
    ) -> Float[Tensor, "... d_out"]:
        """``scale * W h + b`` in ``h``'s device and dtype."""
        out = h @ self.weight.to(h.device, h.dtype).T
        if scale != 1.0:
            out = out * scale
        return out + self.bias.to(h.device, h.dtype)

    def tensors(self, prefix: str = "") -> dict[str, Tensor]:
        """``{prefix + "weight": W, prefix + "bias": b}``, contiguous, for safetensors."""
        return {
            f"{prefix}weight": self.weight.detach().contiguous(),
            f"{prefix}bias": self.bias.detach().contiguous(),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str = "") -> Affine:
        """Inverse of :meth:`tensors` (missing keys raise a KeyError naming them)."""
        missing = [k for k in (f"{prefix}weight", f"{prefix}bias") if k not in tensors]
        if missing:
            raise KeyError(f"affine map tensors {missing} not found")
        return cls(tensors[f"{prefix}weight"], tensors[f"{prefix}bias"])


def checked(
    weight: Tensor, bias: Tensor, square: bool = False
) -> tuple[Float[Tensor, "d_out d_in"], Float[Tensor, " d_out"]]:
    """``(weight, bias)`` as tensors after checking an affine map's shapes and values.

    Raises a ValueError (shapes; NaN/inf, or a non-square weight when ``square``) or a
    TypeError (integer tensors) that says what was given.

    Example:
        >>> w, b = checked([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
        >>> tuple(w.shape), tuple(b.shape)
        ((2, 2), (2,))
    """
    w, b = torch.as_tensor(weight), torch.as_tensor(bias)
    if w.ndim != 2 or (square and w.shape[0] != w.shape[1]):
        want = "square [d_model, d_model]" if square else "[d_out, d_in]"
        raise ValueError(f"weight must be {want}, got shape {tuple(w.shape)}")
    if b.ndim != 1 or b.shape[0] != w.shape[0]:
        raise ValueError(f"bias must be [{w.shape[0]}], got shape {tuple(b.shape)}")
    for name, t in (("weight", w), ("bias", b)):
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a float tensor, got {t.dtype}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf")
    return w, b
