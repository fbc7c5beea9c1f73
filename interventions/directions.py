"""Residual-stream directions as interventions: ablation (project out) and addition (steer).

Both compile to one hook per (layer, site); several interventions on the same hook point run
in the order given to ``lens.apply``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from jaxtyping import Float
from torch import Tensor

from interventions._common import (
    as_layer,
    as_layers,
    as_vector,
    at_positions,
    check_d_model,
    finite_float,
    positions_from_json,
    positions_to_json,
    tensor_from_json,
    tensor_to_json,
    unit,
)
from interventions.base import (
    HookPair,
    Positions,
    register,
    validate_positions,
)
from interventions.sites import (
    RESID_SITES,
    ResidSite,
    check_site,
    hook_name,
    resolve_layer,
    resolve_layers,
)

ABLATION_SITES: tuple[ResidSite, ...] = ("resid_pre", "attn_out", "mlp_out")


def project_out(
    x: Float[Tensor, "... d_model"], r_hat: Float[Tensor, " d_model"]
) -> Float[Tensor, "... d_model"]:
    """``x - (x . r_hat) r_hat`` computed in float32 (at least) on ``x``'s device, returned in
    ``x``'s dtype: in bfloat16 the subtraction would leave ~0.4 % of a large ``x . r_hat``.

    Example:
        >>> import torch
        >>> project_out(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0])).tolist()
        [0.0, 4.0]
    """
    work = torch.promote_types(x.dtype, torch.float32)
    r = r_hat.to(x.device, work)
    xw = x.to(work)
    return (xw - (xw @ r).unsqueeze(-1) * r).to(x.dtype)


@register
@dataclass(eq=False)
class DirectionAblation:
    """Remove a direction from the residual stream: ``x <- x - (x . r_hat) r_hat``.

    With the default sites (every layer's ``resid_pre``, ``attn_out`` and ``mlp_out``, as in
    Arditi et al.) the direction never enters the stream.

    Args:
        direction: one ``[d_model]`` vector, or ``{layer: vector}`` for a per-layer direction
            (then ``layers="all"`` means the dict's layers). Normalised internally.
        layers: ``"all"``, one layer or a list of layers (negative: counted from the end).
        positions: ``"all"``, ``"last"`` (mask-aware) or explicit indices.
        sites: sites of :mod:`interventions.sites` (subset of ``resid_pre``, ``resid_post``,
            ``attn_out``, ``mlp_out``; not ``resid_mid``, which in the TL 4.3 bridge is the
            MLP norm's input and does not write the stream).

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> with lens.apply(model, DirectionAblation(torch.randn(64))):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
    """

    direction: Tensor | dict[int, Tensor]
    layers: str | int | Sequence[int] = "all"
    positions: Positions = "all"
    sites: Sequence[ResidSite] = ABLATION_SITES
    _units: dict[int | None, Tensor] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.direction, dict):
            if not self.direction:
                raise ValueError("direction dict is empty: give at least one {layer: vector}")
            per_layer = {
                as_layer(k, "direction key"): as_vector(v, f"direction[{k}]")
                for k, v in self.direction.items()
            }
            sizes = {v.shape[0] for v in per_layer.values()}
            if len(sizes) > 1:
                raise ValueError(f"per-layer directions differ in length: {sorted(sizes)}")
            self.direction = per_layer
            self._units = {k: unit(v, f"direction[{k}]") for k, v in per_layer.items()}
        else:
            self.direction = as_vector(self.direction, "direction")
            self._units = {None: unit(self.direction, "direction")}
        self.layers = as_layers(self.layers)
        if isinstance(self.direction, dict) and self.layers != "all":
            missing = [
                x for x in cast(list[int], self.layers) if x >= 0 and x not in self.direction
            ]
            if missing:
                raise ValueError(
                    f"layers {missing} have no direction; per-layer directions are given for "
                    f"{sorted(self.direction)}"
                )
        self.positions = validate_positions(self.positions)
        if isinstance(self.sites, str):
            self.sites = (self.sites,)  # type: ignore[assignment]  # a lone site name
        self.sites = tuple(check_site(s, RESID_SITES, "sites") for s in self.sites)
        if not self.sites:
            raise ValueError(f"sites is empty; choose from {list(RESID_SITES)}")
        if len(set(self.sites)) != len(self.sites):
            raise ValueError(f"sites has duplicates: {list(self.sites)}")

    def layer_list(self, model: Any) -> list[int]:
        """The layers this ablation touches on ``model`` (counted from the start)."""
        if not isinstance(self.layers, str):  # normalised to "all" or list[int] on construction
            chosen = resolve_layers(
                model, cast(Sequence[int], self.layers), what="DirectionAblation"
            )
            if isinstance(self.direction, dict):
                missing = [layer for layer in chosen if layer not in self.direction]
                if missing:
                    raise ValueError(
                        f"layers {missing} have no direction; per-layer directions are given "
                        f"for {sorted(self.direction)}"
                    )
            return chosen
        if isinstance(self.direction, dict):
            return resolve_layers(model, sorted(self.direction), what="DirectionAblation")
        return resolve_layers(model, "all")

    def unit_direction(self, layer: int) -> Float[Tensor, " d_model"]:
        """The normalised direction used at ``layer``."""
        return self._units[layer if isinstance(self.direction, dict) else None]

    def hooks(self, model: Any) -> list[HookPair]:
        layers = self.layer_list(model)
        check_d_model(next(iter(self._units.values())), model, "DirectionAblation direction")
        pairs: list[HookPair] = []
        for layer in layers:
            r_hat = self.unit_direction(layer)
            fn = at_positions(self.positions, model, functools.partial(project_out, r_hat=r_hat))
            pairs.extend((hook_name(site, layer), fn) for site in self.sites)
        return pairs

    def to_dict(self) -> dict[str, Any]:
        if isinstance(self.direction, dict):
            direction: Any = {
                "per_layer": {str(k): tensor_to_json(v) for k, v in self.direction.items()}
            }
        else:
            direction = tensor_to_json(self.direction)
        return {
            "type": type(self).__name__,
            "direction": direction,
            "layers": self.layers,
            "positions": positions_to_json(self.positions),
            "sites": list(self.sites),
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> DirectionAblation:
        raw = spec["direction"]
        if "per_layer" in raw:
            direction: Any = {int(k): tensor_from_json(v) for k, v in raw["per_layer"].items()}
        else:
            direction = tensor_from_json(raw)
        return cls(
            direction,
            layers=spec["layers"],
            positions=positions_from_json(spec["positions"]),
            sites=tuple(spec["sites"]),
        )


@register
@dataclass(eq=False)
class ActivationAddition:
    """Add ``coeff * vector`` (not normalised) to the residual stream at one layer and site.

    Args:
        vector: ``[d_model]`` steering vector.
        layer: block index (negative: counted from the end).
        coeff: scale (negative values subtract).
        positions: ``"all"``, ``"last"`` (mask-aware) or explicit indices.
        site: ``"resid_pre"`` (default: the input of block ``layer``), ``"resid_post"``,
            ``"attn_out"`` or ``"mlp_out"``.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> add = ActivationAddition(torch.randn(64), layer=1, coeff=4.0)
        >>> with lens.apply(model, add):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
    """

    vector: Tensor
    layer: int
    coeff: float = 1.0
    positions: Positions = "all"
    site: ResidSite = "resid_pre"

    def __post_init__(self) -> None:
        self.vector = as_vector(self.vector, "vector")
        self.layer = as_layer(self.layer, "layer", from_end=True)
        self.coeff = finite_float(self.coeff, "coeff")
        if not bool(torch.isfinite(self.coeff * self.vector.float()).all()):
            big = float(self.vector.float().abs().max())
            raise ValueError(
                f"ActivationAddition: coeff ({self.coeff:g}) x vector (largest entry {big:g}) "
                "overflows float32; use a smaller coeff or vector"
            )
        self.positions = validate_positions(self.positions)
        self.site = check_site(self.site, RESID_SITES)

    def hooks(self, model: Any) -> list[HookPair]:
        layer = resolve_layer(model, self.layer, what="ActivationAddition layer")
        check_d_model(self.vector, model, "ActivationAddition vector")
        delta = self.coeff * self.vector

        def add(x: Tensor) -> Tensor:
            return x + delta.to(x.device, x.dtype)

        return [(hook_name(self.site, layer), at_positions(self.positions, model, add))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "vector": tensor_to_json(self.vector),
            "layer": self.layer,
            "coeff": self.coeff,
            "positions": positions_to_json(self.positions),
            "site": self.site,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ActivationAddition:
        return cls(
            tensor_from_json(spec["vector"]),
            layer=spec["layer"],
            coeff=spec["coeff"],
            positions=positions_from_json(spec["positions"]),
            site=spec["site"],
        )
