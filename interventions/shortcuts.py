"""LinearShortcut: an affine map from one layer's residual stream to a later layer's.

``z_hat = beta * W h + b`` with ``h = blocks.{src}.hook_resid_post`` and
``z = blocks.{dst}.hook_resid_post``. The map is an :class:`interventions.affine.Affine`
(checks, application, safetensors keys ``weight``/``bias``). This module holds the data, its
JSON/safetensors forms and the hook that applies a fitted map
(``lens.apply(model, shortcut)``: ``h`` is captured at ``src`` and
``blocks.{dst}.hook_resid_post`` is replaced by ``z_hat`` at every position; the layers
still run, so this form saves no compute).

Fitting, early-stopping prediction and faithfulness run the model and live on the read side:
``lens.shortcuts.fit``, ``lens.shortcuts.predict``, ``lens.shortcuts.faithfulness``
(``interventions`` never imports ``lens``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from jaxtyping import Float
from torch import Tensor

from interventions._common import (
    as_layer,
    check_d_model,
    finite_float,
    tensor_from_json,
    tensor_to_json,
)
from interventions.affine import Affine, checked
from interventions.base import HookPair, register
from interventions.sites import ResidSite, hook_name, resolve_layer

_WEIGHTS_FILE = "shortcut.safetensors"
_META_FILE = "shortcut.json"


@register
@dataclass(eq=False)
class LinearShortcut:
    """``z_hat = beta * weight @ h + bias`` from ``resid_post`` of block ``src_layer`` to
    ``resid_post`` of block ``dst_layer`` (the one site shortcuts read and write: ``site``).

    Build with ``lens.shortcuts.fit``, or directly from a ``[d_model, d_model]`` weight and a
    ``[d_model]`` bias. ``meta`` holds JSON-safe notes about the fit.

    Example:
        >>> import torch
        >>> sc = LinearShortcut(2 * torch.eye(4), torch.ones(4), src_layer=0, dst_layer=1)
        >>> sc.transform(torch.ones(4)).tolist()
        [3.0, 3.0, 3.0, 3.0]
    """

    weight: Tensor
    bias: Tensor
    src_layer: int
    dst_layer: int
    beta: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    site: ClassVar[ResidSite] = "resid_post"  # where h is read and z_hat written

    def __post_init__(self) -> None:
        self.src_layer = as_layer(self.src_layer, "src_layer")
        self.dst_layer = as_layer(self.dst_layer, "dst_layer")
        if self.dst_layer < self.src_layer:
            raise ValueError(
                f"dst_layer ({self.dst_layer}) must be >= src_layer ({self.src_layer})"
            )
        self.beta = finite_float(self.beta, "beta")
        w, b = checked(self.weight, self.bias, square=True)
        self.weight, self.bias = w.detach().clone(), b.detach().clone()
        self._affine = Affine(self.weight, self.bias)
        json.dumps(self.meta)  # must be JSON-safe

    @property
    def affine(self) -> Affine:
        """The map ``W h + b`` as an :class:`~interventions.affine.Affine` (rebuilt, and so
        re-checked, when ``weight`` or ``bias`` was reassigned)."""
        if self._affine.weight is not self.weight or self._affine.bias is not self.bias:
            self._affine = Affine(self.weight, self.bias)
        return self._affine

    # ------------------------------------------------------------------ applying
    def transform(self, h: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """``beta * W h + b`` in ``h``'s device and dtype."""
        return self.affine(h, scale=self.beta)

    def check(self, model: Any) -> None:
        """Raise unless both layers exist on ``model`` and the map has its ``d_model``."""
        resolve_layer(model, self.src_layer, what="LinearShortcut src_layer")
        resolve_layer(model, self.dst_layer, what="LinearShortcut dst_layer")
        check_d_model(self.bias, model, "LinearShortcut")

    def hooks(self, model: Any) -> list[HookPair]:
        self.check(model)
        dst = hook_name(self.site, self.dst_layer)
        if self.src_layer == self.dst_layer:
            return [(dst, lambda act, hook: self.transform(act))]
        captured: dict[str, Tensor] = {}

        def capture(act: Tensor, hook: Any) -> None:
            captured["h"] = act

        def replace(act: Tensor, hook: Any) -> Tensor:
            h = captured.pop("h", None)
            if h is None or h.shape != act.shape:
                raise RuntimeError("LinearShortcut: no matching source activation was captured")
            return self.transform(h)

        return [(hook_name(self.site, self.src_layer), capture), (dst, replace)]

    # ------------------------------------------------------------------ data
    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "weight": tensor_to_json(self.weight),
            "bias": tensor_to_json(self.bias),
            "src_layer": self.src_layer,
            "dst_layer": self.dst_layer,
            "beta": self.beta,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> LinearShortcut:
        return cls(
            tensor_from_json(spec["weight"]),
            tensor_from_json(spec["bias"]),
            spec["src_layer"],
            spec["dst_layer"],
            spec["beta"],
            dict(spec.get("meta", {})),
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``shortcut.safetensors`` (weight, bias) and ``shortcut.json`` to ``directory``."""
        from safetensors.torch import save_file  # noqa: PLC0415

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.affine.tensors(), str(folder / _WEIGHTS_FILE))
        spec = {k: v for k, v in self.to_dict().items() if k not in ("weight", "bias")}
        (folder / _META_FILE).write_text(json.dumps(spec, indent=2))
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> LinearShortcut:
        """Read a shortcut written by :meth:`save` (no pickle involved)."""
        from safetensors.torch import load_file  # noqa: PLC0415

        folder = Path(directory)
        for name in (_WEIGHTS_FILE, _META_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} not found: not a saved LinearShortcut")
        spec = json.loads((folder / _META_FILE).read_text())
        if spec.get("type") != cls.__name__:
            raise ValueError(
                f"{folder / _META_FILE} describes {spec.get('type')!r}, not {cls.__name__}"
            )
        affine = Affine.from_tensors(load_file(str(folder / _WEIGHTS_FILE)))
        return cls(
            affine.weight,
            affine.bias,
            spec["src_layer"],
            spec["dst_layer"],
            spec["beta"],
            dict(spec.get("meta", {})),
        )
