"""Interventions through a sparse dictionary: splice it in, ablate features, steer features.

Each reads the dictionary's input hook and edits its output hook (the same hook for an
:class:`~interventions.dictionary.SAE`; for a :class:`~interventions.dictionary.Transcoder` the
input is captured first and the output site edited). Edits act at ``positions`` only; every
activation the hooks see must be finite (NaN or inf raises, naming the hook). Writing a
dictionary's reconstruction needs a site whose edit reaches the model: ``resid_mid`` and
``mlp_in`` are refused as write sites (see :mod:`interventions.sites`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from interventions._common import finite_float, positions_from_json, positions_to_json
from interventions.base import (
    HookPair,
    Positions,
    position_mask,
    register,
    validate_positions,
)
from interventions.dictionary import SAE, Transcoder

_NO_WRITE = ("resid_mid", "mlp_in")
Edit = Callable[[Tensor, Tensor], Tensor]  # (x_out [n, d], x_in [n, d]) -> new x_out


def _check_dictionary(sae: Any, what: str) -> SAE:
    if not isinstance(sae, SAE):
        raise TypeError(f"{what} needs an SAE or Transcoder, got {type(sae).__name__}")
    out_site = sae.out_site if isinstance(sae, Transcoder) else sae.site
    if out_site in _NO_WRITE:
        raise ValueError(
            f"{what}: {sae.describe()} writes {out_site!r}, where an edit does not reach the "
            "model's output (TransformerLens 4.3 bridge); train it on another site"
        )
    return sae


def _finite(x: Tensor, hook: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"the activation at {hook} holds NaN or inf: the dictionary cannot encode it "
            "(check the model's inputs and weights)"
        )


def _flat(x: Tensor, d: int) -> Tensor:
    return x.flatten(-2) if x.shape[-1] != d and x.ndim == 4 else x  # hook_z: heads x d_head


def _dictionary_hooks(sae: SAE, model: Any, positions: Positions, edit: Edit) -> list[HookPair]:
    """Hooks applying ``edit(x_out, x_in)`` at ``positions`` (checked against ``model``)."""
    sae.check(model)
    in_hook, out_hook = sae.in_hook, sae.out_hook
    captured: dict[str, Tensor] = {}

    def write(act: Tensor, x_in: Tensor) -> Tensor:
        x_out = _flat(act, sae.d_in)
        _finite(x_out, out_hook)
        mask = position_mask(model, positions, act)
        new = edit(x_out, x_in).to(act.dtype)
        if mask is not None:
            new = torch.where(mask[..., None], new, x_out)
        return new.reshape(act.shape)

    if in_hook == out_hook:

        def same(act: Tensor, hook: Any) -> Tensor:
            x = _flat(act, sae.d_in)
            _finite(x, in_hook)
            return write(act, x)

        return [(out_hook, same)]

    def capture(act: Tensor, hook: Any) -> None:
        x = _flat(act, sae.d_in)
        _finite(x, in_hook)
        captured["x"] = x

    def replace(act: Tensor, hook: Any) -> Tensor:
        x_in = captured.pop("x", None)
        if x_in is None or x_in.shape[:-1] != act.shape[: x_in.ndim - 1]:
            raise RuntimeError(f"no matching input was captured at {in_hook} for {out_hook}")
        return write(act, x_in)

    return [(in_hook, capture), (out_hook, replace)]


def _features(sae: SAE, features: Any, what: str) -> list[int]:
    if isinstance(features, int) and not isinstance(features, bool):
        features = [features]
    if isinstance(features, Tensor):
        features = features.tolist()
    if not isinstance(features, Sequence) or isinstance(features, str) or not features:
        raise ValueError(f"{what}: features must be a non-empty list of latent indices")
    out = []
    for f in features:
        if isinstance(f, bool) or not isinstance(f, int):
            raise TypeError(f"{what}: feature indices must be ints, got {f!r}")
        if not 0 <= f < sae.d_sae:
            raise ValueError(
                f"{what}: feature {f} does not exist; "
                f"this dictionary has latents 0..{sae.d_sae - 1}"
            )
        out.append(f)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: features repeat: {out}")
    return out


def _delta(sae: SAE, x_in: Tensor, change: Tensor, feats: list[int]) -> Tensor:
    """Output-space change when the activations of ``feats`` change by ``change`` [..., n]."""
    w = sae.W_dec[feats].to(x_in.device)
    out = change @ w
    scale, _ = sae.scales(x_in)
    return out if scale is None else out * scale


def _dictionary_json(sae: SAE) -> dict[str, Any]:
    return sae.to_dict()


@register
@dataclass(eq=False)
class SpliceSAE:
    """Replace the activation by the dictionary's reconstruction (plus the error term
    ``x - reconstruction`` when ``error``, so with no other edit the forward is unchanged up
    to float rounding). ``error=False`` runs the model on the reconstruction alone (its loss
    is the dictionary's downstream loss).

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> sae = lens.dictionaries.random_sae(model, site="resid_post", layer=1, n_latents=96, k=8)
        >>> with lens.apply(model, SpliceSAE(sae, error=False)):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
    """

    sae: SAE
    error: bool = True
    positions: Positions = "all"

    def __post_init__(self) -> None:
        self.sae = _check_dictionary(self.sae, "SpliceSAE")
        self.error = bool(self.error)
        self.positions = validate_positions(self.positions)

    def hooks(self, model: Any) -> list[HookPair]:
        sae, error = self.sae, self.error

        def splice(x_out: Tensor, x_in: Tensor) -> Tensor:
            recon = sae.decode(sae.encode(x_in), x_in).to(x_out.dtype)
            return recon + (x_out - recon) if error else recon

        return _dictionary_hooks(sae, model, self.positions, splice)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "sae": _dictionary_json(self.sae),
            "error": self.error,
            "positions": positions_to_json(self.positions),
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> SpliceSAE:
        return cls(
            SAE.from_dict(spec["sae"]),
            error=spec["error"],
            positions=positions_from_json(spec["positions"]),
        )


@register
@dataclass(eq=False)
class FeatureAblation:
    """Remove the decoder contribution of ``features``: ``x <- x - sum_f a_f(x) W_dec[f]``
    (scaled back when the dictionary normalises its input). The rest of ``x``, the error term
    included, is untouched.

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> sae = lens.dictionaries.random_sae(model, site="resid_pre", layer=1, n_latents=96, k=8)
        >>> with lens.apply(model, FeatureAblation(sae, [3, 7])):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
    """

    sae: SAE
    features: Sequence[int]
    positions: Positions = "all"

    def __post_init__(self) -> None:
        self.sae = _check_dictionary(self.sae, "FeatureAblation")
        self.features = _features(self.sae, self.features, "FeatureAblation")
        self.positions = validate_positions(self.positions)

    def hooks(self, model: Any) -> list[HookPair]:
        sae, feats = self.sae, list(self.features)

        def ablate(x_out: Tensor, x_in: Tensor) -> Tensor:
            acts = sae.encode(x_in)[..., feats]
            return x_out - _delta(sae, x_in, acts, feats).to(x_out.dtype)

        return _dictionary_hooks(sae, model, self.positions, ablate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "sae": _dictionary_json(self.sae),
            "features": list(self.features),
            "positions": positions_to_json(self.positions),
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> FeatureAblation:
        return cls(
            SAE.from_dict(spec["sae"]),
            spec["features"],
            positions=positions_from_json(spec["positions"]),
        )


@register
@dataclass(eq=False)
class FeatureSteering:
    """Steer features: ``mode="add"`` adds ``value x W_dec[f]`` for each ``{f: value}``;
    ``mode="clamp"`` sets each feature's activation to ``value`` (adds
    ``(value - a_f(x)) x W_dec[f]``, scaled back when the dictionary normalises its input).

    Example:
        >>> import lens, torch
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> sae = lens.dictionaries.random_sae(model, site="resid_post", layer=0, n_latents=96, k=8)
        >>> with lens.apply(model, FeatureSteering(sae, {5: 4.0}, positions="last")):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
    """

    sae: SAE
    values: Mapping[int, float]
    mode: Literal["add", "clamp"] = "add"
    positions: Positions = "all"

    def __post_init__(self) -> None:
        self.sae = _check_dictionary(self.sae, "FeatureSteering")
        if not isinstance(self.values, Mapping) or not self.values:
            raise ValueError("FeatureSteering: values must be a non-empty {feature: value} dict")
        feats = _features(self.sae, [_int_key(k) for k in self.values], "FeatureSteering")
        self.values = {
            f: finite_float(v, f"FeatureSteering value of feature {f}")
            for f, v in zip(feats, self.values.values())
        }
        if self.mode not in ("add", "clamp"):
            raise ValueError(f"FeatureSteering mode must be 'add' or 'clamp', got {self.mode!r}")
        self.positions = validate_positions(self.positions)

    def hooks(self, model: Any) -> list[HookPair]:
        sae, mode = self.sae, self.mode
        feats = list(self.values)
        target = torch.tensor([self.values[f] for f in feats], dtype=sae.W_dec.dtype)

        def steer(x_out: Tensor, x_in: Tensor) -> Tensor:
            t = target.to(x_out.device)
            if mode == "add":
                return x_out + (t @ sae.W_dec[feats].to(x_out.device)).to(x_out.dtype)
            change = t - sae.encode(x_in)[..., feats]
            return x_out + _delta(sae, x_in, change, feats).to(x_out.dtype)

        return _dictionary_hooks(sae, model, self.positions, steer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "sae": _dictionary_json(self.sae),
            "values": {str(k): v for k, v in self.values.items()},
            "mode": self.mode,
            "positions": positions_to_json(self.positions),
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> FeatureSteering:
        return cls(
            SAE.from_dict(spec["sae"]),
            {int(k): v for k, v in spec["values"].items()},
            mode=spec["mode"],
            positions=positions_from_json(spec["positions"]),
        )


def _int_key(key: Any) -> int:
    if isinstance(key, str) and key.lstrip("-").isdigit():
        return int(key)
    return key
