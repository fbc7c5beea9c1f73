"""Attention heads as components: HeadAblation, and ActivationPatch (write given values).

A head's output is read and written at ``blocks.{l}.attn.hook_z`` (``[batch, pos, n_heads,
d_head]``); the head's contribution to the residual stream is that slice times its rows of
``W_O``. The TransformerLens layout facts live in :mod:`interventions.bridge`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from interventions import bridge as hb
from interventions._common import (
    as_layer,
    at_positions,
    positions_from_json,
    positions_to_json,
    tensor_from_json,
    tensor_to_json,
)
from interventions.base import (
    HookPair,
    Positions,
    position_mask,
    register,
    validate_positions,
)
from interventions.sites import check_site, hook_name, resolve_layer, resolve_layers

# Sites an ActivationPatch writes: "z" is per head (heads= picks some), the rest whole vectors.
PatchSite = Literal["resid_pre", "resid_post", "attn_out", "mlp_out", "z"]
PATCH_SITES: tuple[PatchSite, ...] = get_args(PatchSite)


def check_heads(model: Any, heads: Sequence[int], *, what: str) -> None:
    n = hb.n_heads(model)
    bad = [h for h in heads if not 0 <= h < n]
    if bad:
        raise ValueError(f"{what}: heads {bad} out of range; this model has heads 0..{n - 1}")


def _as_heads(heads: Any) -> dict[int, list[int]]:
    if not isinstance(heads, Mapping):
        raise TypeError("heads must be {layer: [head indices]}")
    out: dict[int, list[int]] = {}
    for layer, idx in heads.items():
        idx = [idx] if isinstance(idx, int) else list(idx)
        items = [as_layer(h, f"head index at layer {layer}") for h in idx]
        if not items:
            raise ValueError(f"heads[{layer}] is empty")
        if len(set(items)) != len(items):
            raise ValueError(f"heads[{layer}] has duplicates: {items}")
        out[as_layer(layer, "head layer", from_end=True)] = items
    if not out:
        raise ValueError("heads is empty: nothing would be ablated")
    return dict(sorted(out.items()))


def _finite(t: Any, what: str) -> Tensor:
    t = torch.as_tensor(t).detach().clone()
    if not t.is_floating_point():
        raise TypeError(f"{what} must be a float tensor, got dtype {t.dtype}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} contains NaN or inf")
    return t


def _save_folder(
    directory: str | Path, spec: dict[str, Any], tensors: dict[str, Tensor], stem: str
) -> Path:
    """Write ``{stem}.json`` (``spec``) and ``{stem}.safetensors`` (``tensors``)."""
    from safetensors.torch import save_file  # noqa: PLC0415

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
              str(folder / f"{stem}.safetensors"))  # fmt: skip
    (folder / f"{stem}.json").write_text(json.dumps(spec, indent=2))
    return folder


def _load_folder(
    directory: str | Path, stem: str, kind: str
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read what :func:`_save_folder` wrote (no pickle involved); checks the type."""
    from safetensors.torch import load_file  # noqa: PLC0415

    folder = Path(directory)
    for name in (f"{stem}.json", f"{stem}.safetensors"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found: not a saved {kind}")
    spec = json.loads((folder / f"{stem}.json").read_text())
    if spec.get("type") != kind:
        raise ValueError(f"{folder / stem}.json describes {spec.get('type')!r}, not {kind}")
    return spec, load_file(str(folder / f"{stem}.safetensors"))


@register
@dataclass(eq=False)
class HeadAblation:
    """Replace chosen heads' outputs (their ``hook_z`` slice) by zero or by their mean.

    Args:
        heads: ``{layer: [head indices]}`` (negative layers count from the end).
        mode: ``"zero"`` or ``"mean"`` (then ``means`` is required).
        means: ``{layer: tensor [n_heads, d_head]}``, e.g. the mean of
            ``blocks.{l}.attn.hook_z`` from ``lens.collect``; only the listed heads are used.
        positions: ``"all"``, ``"last"`` (mask-aware) or explicit indices.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> with lens.apply(model, HeadAblation({0: [1, 3]})):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
    """

    heads: dict[int, list[int]]
    mode: Literal["zero", "mean"] = "zero"
    means: dict[int, Tensor] | None = None
    positions: Positions = "all"

    def __post_init__(self) -> None:
        self.heads = _as_heads(self.heads)
        if self.mode not in ("zero", "mean"):
            raise ValueError(f"mode must be 'zero' or 'mean', got {self.mode!r}")
        if self.mode == "mean":
            if not isinstance(self.means, Mapping):
                raise ValueError("mode='mean' needs means={layer: tensor [n_heads, d_head]}")
            means = {as_layer(k, "means layer", from_end=True): v for k, v in self.means.items()}
            missing = sorted(set(self.heads) - set(means))
            if missing:
                raise ValueError(f"means lacks layers {missing}")
            self.means = {k: _finite(means[k], f"means[{k}]") for k in self.heads}
            for k, v in self.means.items():
                if v.ndim != 2:
                    raise ValueError(f"means[{k}] must be [n_heads, d_head], got {tuple(v.shape)}")
        elif self.means is not None:
            raise ValueError("means is only used with mode='mean'")
        self.positions = validate_positions(self.positions)

    def hooks(self, model: Any) -> list[HookPair]:
        layers = resolve_layers(model, list(self.heads), what="HeadAblation layers")
        for layer, idx in self.heads.items():
            check_heads(model, idx, what=f"HeadAblation at layer {layer}")
            if self.means is not None:
                want = (hb.n_heads(model), int(model.cfg.d_head))
                if tuple(self.means[layer].shape) != want:
                    raise ValueError(
                        f"means[{layer}] has shape {tuple(self.means[layer].shape)}, "
                        f"this model needs {want}"
                    )
        return [
            (hb.z_hook(layer), self._hook(key, model))
            for key, layer in zip(self.heads, layers, strict=True)
        ]

    def _hook(self, layer: int, model: Any) -> Any:
        index = torch.tensor(self.heads[layer], dtype=torch.long)
        means = self.means[layer][index] if self.means is not None else None

        def edit(z: Tensor) -> Tensor:
            out = z.clone()
            idx = index.to(z.device)
            out[..., idx, :] = 0.0 if means is None else means.to(z.device, z.dtype)
            return out

        return at_positions(self.positions, model, edit)

    def to_dict(self) -> dict[str, Any]:
        means = None
        if self.means is not None:
            means = {str(k): tensor_to_json(v) for k, v in self.means.items()}
        return {
            "type": type(self).__name__,
            "heads": {str(k): list(v) for k, v in self.heads.items()},
            "mode": self.mode,
            "means": means,
            "positions": positions_to_json(self.positions),
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> HeadAblation:
        means = spec.get("means")
        if means is not None:
            means = {int(k): tensor_from_json(v) for k, v in means.items()}
        return cls(
            {int(k): v for k, v in spec["heads"].items()},
            mode=spec["mode"],
            means=means,
            positions=positions_from_json(spec["positions"]),
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``head_ablation.json`` and the means as ``head_ablation.safetensors``."""
        spec = {**self.to_dict(), "means": None}
        tensors = {f"means.{k}": v for k, v in (self.means or {}).items()}
        return _save_folder(directory, spec, tensors, "head_ablation")

    @classmethod
    def load(cls, directory: str | Path) -> HeadAblation:
        """Read a HeadAblation written by :meth:`save`."""
        spec, tensors = _load_folder(directory, "head_ablation", cls.__name__)
        means = {int(k.split(".", 1)[1]): v for k, v in tensors.items()} or None
        return cls(
            {int(k): v for k, v in spec["heads"].items()},
            mode=spec["mode"],
            means=means,
            positions=positions_from_json(spec["positions"]),
        )


@register
@dataclass(eq=False)
class ActivationPatch:
    """Overwrite one site's activation with given values at chosen positions (and heads).

    Args:
        site: ``"resid_pre"``, ``"resid_post"``, ``"attn_out"``, ``"mlp_out"`` or ``"z"``
            (per-head ``attn.hook_z``; see :mod:`interventions.sites`).
        layer: the block (negative: counted from the end).
        values: the activation to write, shaped like the site's activation without the
            batch dimension (``[pos, d_model]``, or ``[pos, n_heads, d_head]`` for ``"z"``)
            or with it (``[batch, pos, ...]``); e.g. a capture from another prompt.
        positions: ``"all"``, ``"last"`` (mask-aware) or explicit indices; only those
            positions are written, from the same positions of ``values``.
        heads: for ``site="z"``, the heads to write (None = all heads).

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> patch = ActivationPatch("resid_pre", 1, torch.zeros(3, 64), positions=[2])
        >>> with lens.apply(model, patch):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
    """

    site: PatchSite
    layer: int
    values: Tensor
    positions: Positions = "all"
    heads: list[int] | None = None

    def __post_init__(self) -> None:
        self.site = check_site(self.site, PATCH_SITES)
        self.layer = as_layer(self.layer, "layer", from_end=True)
        self.values = _finite(self.values, "ActivationPatch values")
        self.positions = validate_positions(self.positions)
        if self.heads is not None:
            if self.site != "z":
                raise ValueError("heads= only applies to site='z' (per-head attn.hook_z)")
            self.heads = list(_as_heads({0: self.heads})[0])

    def hooks(self, model: Any) -> list[HookPair]:
        layer = resolve_layer(model, self.layer, what="ActivationPatch layer")
        width = int(model.cfg.d_model)
        tail: tuple[int, ...] = (width,)
        if self.site == "z":
            tail = (hb.n_heads(model), int(model.cfg.d_head))
            if self.heads is not None:
                check_heads(model, self.heads, what="ActivationPatch")
        if tuple(self.values.shape[-len(tail) :]) != tail or self.values.ndim not in (
            len(tail) + 1,
            len(tail) + 2,
        ):
            raise ValueError(
                f"ActivationPatch values have shape {tuple(self.values.shape)}; site "
                f"{self.site!r} needs [pos, {', '.join(map(str, tail))}] (optionally with batch)"
            )
        return [(hook_name(self.site, layer), self._hook(model))]

    def _hook(self, model: Any) -> Any:
        values, positions, heads = self.values, self.positions, self.heads

        def hook(act: Tensor, hook: Any) -> Tensor:
            new = values.to(act.device, act.dtype)
            if new.ndim < act.ndim:
                new = new.expand(act.shape[0], *new.shape)
            if new.shape[:2] != act.shape[:2]:
                raise ValueError(
                    f"ActivationPatch values cover [batch, pos]={list(new.shape[:2])}, "
                    f"the forward has {list(act.shape[:2])}"
                )
            mask = position_mask(model, positions, act)
            if mask is None:
                mask = torch.ones(act.shape[:2], dtype=torch.bool, device=act.device)
            out = act.clone()
            if heads is None:
                out[mask] = new[mask]
            else:  # write only the listed heads
                idx = torch.tensor(heads, device=act.device)
                rows = out[mask]
                rows[:, idx] = new[mask][:, idx]
                out[mask] = rows
            return out

        return hook

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "site": self.site,
            "layer": self.layer,
            "values": tensor_to_json(self.values),
            "positions": positions_to_json(self.positions),
            "heads": self.heads,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ActivationPatch:
        return cls(
            spec["site"],
            spec["layer"],
            tensor_from_json(spec["values"]),
            positions=positions_from_json(spec["positions"]),
            heads=spec.get("heads"),
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``activation_patch.json`` and the values as ``activation_patch.safetensors``
        (``to_dict`` keeps them inline as exact JSON; this is the compact form).

        Example:
            >>> import tempfile, torch
            >>> patch = ActivationPatch("resid_pre", 1, torch.randn(3, 64), positions=[2])
            >>> again = ActivationPatch.load(patch.save(tempfile.mkdtemp()))
            >>> torch.equal(again.values, patch.values), again.positions
            (True, [2])
        """
        spec = {**self.to_dict(), "values": None}
        return _save_folder(directory, spec, {"values": self.values}, "activation_patch")

    @classmethod
    def load(cls, directory: str | Path) -> ActivationPatch:
        """Read an ActivationPatch written by :meth:`save`."""
        spec, tensors = _load_folder(directory, "activation_patch", cls.__name__)
        return cls(
            spec["site"],
            spec["layer"],
            tensors["values"],
            positions=positions_from_json(spec["positions"]),
            heads=spec.get("heads"),
        )
