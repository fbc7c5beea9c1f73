"""Sparse dictionaries as data: :class:`SAE` (encode and reconstruct one site) and
:class:`Transcoder` (read one site, predict another). Interventions that splice them into a
forward live in :mod:`interventions.dictionary_edits`; file formats, training and evaluation
live on the read side (``lens.dictionaries``; ``interventions`` never imports ``lens``).

Conventions (those of SAELens, so its folders load unchanged): ``W_enc`` is ``[d_in, d_sae]``,
``W_dec`` ``[d_sae, d_in]`` (one row per latent), ``b_enc`` ``[d_sae]``, ``b_dec`` ``[d_in]``.
``encode(x) = act((normalise(x) - b_dec * apply_b_dec_to_input) @ W_enc + b_enc)`` and
``decode(f) = denormalise(f @ W_dec + b_dec)``. Activations: ``relu``; ``topk`` (the ``k``
largest pre-activations, then relu, the rest zero); ``jumprelu`` (relu where the
pre-activation exceeds a per-latent ``threshold``). Normalisations: ``none``,
``constant_norm_rescale`` (each vector scaled to norm ``sqrt(d_in)``, undone on the way out)
and ``layer_norm`` (centred and divided by its standard deviation, undone on the way out).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor

from interventions._common import as_layer, tensor_from_json, tensor_to_json
from interventions.sites import SITES, check_site, hook_name, layer_range, n_layers

Activation = Literal["topk", "relu", "jumprelu"]
Normalize = Literal["none", "constant_norm_rescale", "layer_norm"]
# The transcoder input sparsify and most transcoder papers read: the MLP's normalised input.
MLP_NORMALISED_IN = "mlp_in_normalised"
_EXTRA_HOOKS = {MLP_NORMALISED_IN: "blocks.{layer}.mlp.hook_in"}
# How a model's weight fingerprint is computed, registered by lens.dictionaries (interventions
# never imports lens); while none is registered, binding is by shape only.
_FINGERPRINT: list[Callable[[Any], str]] = []


def register_fingerprint(fn: Callable[[Any], str]) -> None:
    """Use ``fn(model)`` as the weight fingerprint :meth:`SAE.check` compares with the one a
    dictionary records in ``meta["binding"]["fingerprint"]``."""
    _FINGERPRINT[:] = [fn]


def site_hook(site: str, layer: int) -> str:
    """:func:`interventions.sites.hook_name`, plus ``"mlp_in_normalised"`` (the MLP's input
    after its norm, ``blocks.L.mlp.hook_in``), which transcoders may read."""
    if site in _EXTRA_HOOKS:
        return _EXTRA_HOOKS[site].format(layer=layer)
    return hook_name(site, layer)


def site_width(model: Any, site: str) -> int:
    """Per-token width of ``site`` on ``model`` (d_model, d_mlp or n_heads x d_head)."""
    cfg = model.cfg
    if site in ("mlp_pre", "mlp_post"):
        return int(cfg.d_mlp)
    if site == "z":
        return int(cfg.n_heads) * int(cfg.d_head)
    return int(cfg.d_model)


def _weight(value: Any, what: str, shape: tuple[int, ...]) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{what} must be a torch tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{what} must be a float tensor, got {value.dtype}")
    if tuple(value.shape) != shape:
        raise ValueError(f"{what} has shape {tuple(value.shape)}, expected {shape}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{what} contains NaN or inf")
    return value.detach()


@dataclass(eq=False)
class SAE:
    """A sparse autoencoder on ``site`` of block ``layer``.

    Args:
        W_enc, b_enc, W_dec, b_dec: the weights (shapes in the module docstring).
        site: where it reads and writes (:mod:`interventions.sites` short name).
        layer: the block (>= 0).
        activation: ``"topk"`` (needs ``k``), ``"relu"`` or ``"jumprelu"`` (needs
            ``threshold``, ``[d_sae]``).
        normalize: input normalisation (see the module docstring).
        apply_b_dec_to_input: subtract ``b_dec`` from the input before encoding.
        meta: JSON-safe notes (where it came from, how it was trained, model binding).
        strict: refuse a model whose weight fingerprint differs from the one recorded in
            ``meta["binding"]`` (dictionaries trained by lens record one; SAELens and
            sparsify folders do not, and bind by shape only). ``False`` applies the
            dictionary to any model of the right shape, e.g. a fine-tuned copy. Not saved.

    Example:
        >>> import torch
        >>> sae = SAE(torch.eye(4), torch.zeros(4), torch.eye(4), torch.zeros(4),
        ...           site="resid_post", layer=0, activation="topk", k=1)
        >>> sae.encode(torch.tensor([1.0, 3.0, -2.0, 0.5])).tolist()
        [0.0, 3.0, 0.0, 0.0]
    """

    W_enc: Tensor
    b_enc: Tensor
    W_dec: Tensor
    b_dec: Tensor
    site: str
    layer: int
    activation: Activation = "topk"
    k: int | None = None
    threshold: Tensor | None = None
    normalize: Normalize = "none"
    apply_b_dec_to_input: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    strict: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.W_enc, Tensor) or self.W_enc.ndim != 2:
            raise ValueError("W_enc must be a [d_in, d_sae] tensor")
        d_in, d_sae = self.W_enc.shape
        self.W_enc = _weight(self.W_enc, "W_enc", (d_in, d_sae))
        self.b_enc = _weight(self.b_enc, "b_enc", (d_sae,))
        self.W_dec = _weight(self.W_dec, "W_dec", (d_sae, d_in))
        self.b_dec = _weight(self.b_dec, "b_dec", (d_in,))
        self.check_sites()
        self.layer = as_layer(self.layer, "layer")
        if self.activation not in get_args(Activation):
            raise ValueError(
                f"activation must be one of {list(get_args(Activation))}, got {self.activation!r}"
            )
        if self.normalize not in get_args(Normalize):
            raise ValueError(
                f"normalize must be one of {list(get_args(Normalize))}, got {self.normalize!r}"
            )
        if self.activation == "topk":
            if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= d_sae:
                raise ValueError(f"activation='topk' needs an int k in 1..{d_sae}, got {self.k!r}")
        if self.activation == "jumprelu":
            if self.threshold is None:
                raise ValueError("activation='jumprelu' needs threshold, a [d_sae] tensor")
            self.threshold = _weight(self.threshold, "threshold", (d_sae,))
        self.apply_b_dec_to_input = bool(self.apply_b_dec_to_input)

    def check_sites(self) -> None:
        check_site(self.site, SITES, "SAE site")

    # ------------------------------------------------------------------ shape
    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[1])

    @property
    def in_hook(self) -> str:
        """The hook whose activation is encoded."""
        return site_hook(self.site, self.layer)

    @property
    def out_hook(self) -> str:
        """The hook the reconstruction stands for (the same hook for an SAE)."""
        return self.in_hook

    def describe(self) -> str:
        return f"{type(self).__name__} d_in={self.d_in} d_sae={self.d_sae} at {self.in_hook}"

    def check(self, model: Any) -> None:
        """Raise unless ``model`` has this dictionary's layer and site width and, when
        ``strict`` and a fingerprint is recorded, its weights (naming both sides)."""
        n = n_layers(model)
        if not 0 <= self.layer < n:
            raise ValueError(
                f"{self.describe()} needs layer {self.layer}, but {layer_range(model)}"
            )
        width = site_width(model, self.site)
        if width != self.d_in:
            raise ValueError(
                f"{self.describe()} reads vectors of width {self.d_in}, but this model's "
                f"{self.site} has width {width}: the dictionary belongs to another model"
            )
        self.check_weights(model)

    def check_weights(self, model: Any) -> None:
        """Raise when ``strict`` and the recorded weight fingerprint is not ``model``'s."""
        binding = self.meta.get("binding")
        recorded = binding.get("fingerprint") if isinstance(binding, dict) else None
        if not self.strict or not recorded or not _FINGERPRINT:
            return
        mine = _FINGERPRINT[0](model)
        if mine != recorded:
            raise ValueError(
                f"{self.describe()} was trained on other weights (fingerprint {recorded}; this "
                f"model's is {mine}; dtype counts). To apply it anyway to a model of the same "
                "shape (e.g. a fine-tuned copy), set strict=False: "
                "lens.dictionaries.load(folder, strict=False) or sae.strict = False"
            )

    # ------------------------------------------------------------------ maths
    def _normalise(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``(normalised x, scale, shift)`` with ``x = normalised * scale + shift``."""
        if self.normalize == "constant_norm_rescale":
            scale = x.norm(dim=-1, keepdim=True) / math.sqrt(self.d_in)
            return x / scale, scale, None
        if self.normalize == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            centred = x - mu
            std = centred.std(dim=-1, keepdim=True)
            return centred / (std + 1e-5), std, mu
        return x, None, None

    def pre_activations(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """``(normalise(x) - b_dec) @ W_enc + b_enc``: the values before the activation."""
        x = self._normalise(x.to(self.W_enc.dtype))[0]
        if self.apply_b_dec_to_input:
            x = x - self.b_dec.to(x.device)
        return x @ self.W_enc.to(x.device) + self.b_enc.to(x.device)

    def activate(self, pre: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_sae"]:
        """The activation function applied to pre-activations."""
        if self.activation == "relu":
            return torch.relu(pre)
        if self.activation == "jumprelu":
            assert self.threshold is not None
            return torch.where(pre > self.threshold.to(pre.device), pre, 0).clamp_min(0)
        assert self.k is not None
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, torch.relu(top.values))

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """Feature activations of ``x`` (in the dictionary's dtype)."""
        return self.activate(self.pre_activations(x))

    def decode(
        self, feats: Float[Tensor, "... d_sae"], x: Tensor | None = None
    ) -> Float[Tensor, "... d_in"]:
        """``feats @ W_dec + b_dec``, denormalised with the statistics of input ``x`` (needed
        only when ``normalize`` is not ``"none"``)."""
        out = feats @ self.W_dec.to(feats.device) + self.b_dec.to(feats.device)
        scale, shift = self.scales(x)
        if scale is not None:
            out = out * scale
        if shift is not None:
            out = out + shift
        return out

    def scales(self, x: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        """The factor (and shift) that map decoder space back to the input's scale."""
        if self.normalize == "none":
            return None, None
        if x is None:
            raise ValueError(f"normalize={self.normalize!r}: decode needs the input x")
        _, scale, shift = self._normalise(x.to(self.W_enc.dtype))
        return scale, shift

    def reconstruct(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        """``decode(encode(x))`` in ``x``'s dtype."""
        return self.decode(self.encode(x), x).to(x.dtype)

    # ------------------------------------------------------------------ data
    def tensors(self) -> dict[str, Tensor]:
        """The weights under SAELens's names (plus ``threshold`` for jumprelu)."""
        out = {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out

    def config(self) -> dict[str, Any]:
        """Everything but the weights (JSON-safe)."""
        return {
            "type": type(self).__name__,
            "site": self.site,
            "layer": self.layer,
            "activation": self.activation,
            "k": self.k,
            "normalize": self.normalize,
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "meta": self.meta,
            **self._extra_config(),
        }

    def _extra_config(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """Exact JSON form (weights as lists of floats)."""
        return {**self.config(), **{k: tensor_to_json(v) for k, v in self.tensors().items()}}

    @classmethod
    def from_parts(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> SAE:
        """Rebuild from :meth:`config` and :meth:`tensors` (any subclass, by ``type``)."""
        kind = {"SAE": SAE, "Transcoder": Transcoder}.get(str(config.get("type")))
        if kind is None:
            raise ValueError(f"unknown dictionary type {config.get('type')!r}")
        missing = [k for k in ("W_enc", "b_enc", "W_dec", "b_dec") if k not in tensors]
        if missing:
            raise ValueError(f"dictionary weights lack {missing}")
        args = {k: v for k, v in config.items() if k != "type"}
        return kind(
            tensors["W_enc"],
            tensors["b_enc"],
            tensors["W_dec"],
            tensors["b_dec"],
            threshold=tensors.get("threshold"),
            **args,
        )

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> SAE:
        names = ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")
        tensors = {k: tensor_from_json(spec[k]) for k in names if k in spec}
        return cls.from_parts({k: v for k, v in spec.items() if k not in names}, tensors)


@dataclass(eq=False)
class Transcoder(SAE):
    """A sparse dictionary that reads ``site`` and predicts ``out_site`` of the same block
    (e.g. the MLP's normalised input -> ``mlp_out``). ``apply_b_dec_to_input`` defaults to
    False (``b_dec`` lives in the output space).

    Example:
        >>> import torch
        >>> tc = Transcoder(torch.eye(4), torch.zeros(4), 2 * torch.eye(4), torch.zeros(4),
        ...                 site="mlp_in_normalised", layer=0, out_site="mlp_out",
        ...                 activation="relu")
        >>> tc.reconstruct(torch.tensor([1.0, -1.0, 0.0, 2.0])).tolist()
        [2.0, 0.0, 0.0, 4.0]
    """

    out_site: str = "mlp_out"
    apply_b_dec_to_input: bool = False

    def check_sites(self) -> None:
        if self.site != MLP_NORMALISED_IN:
            check_site(self.site, SITES, "Transcoder site")
        check_site(self.out_site, SITES, "Transcoder out_site")
        if self.normalize != "none":
            raise ValueError("a Transcoder does not support input normalisation (normalize)")

    @property
    def out_hook(self) -> str:
        return site_hook(self.out_site, self.layer)

    def describe(self) -> str:
        return (
            f"Transcoder d_in={self.d_in} d_sae={self.d_sae} from {self.in_hook} to {self.out_hook}"
        )

    def check(self, model: Any) -> None:
        if self.site == MLP_NORMALISED_IN:
            n = n_layers(model)
            if not 0 <= self.layer < n:
                raise ValueError(
                    f"{self.describe()} needs layer {self.layer}, but {layer_range(model)}"
                )
            width = int(model.cfg.d_model)
            if width != self.d_in:
                raise ValueError(
                    f"{self.describe()} reads vectors of width {self.d_in}, but this model's "
                    f"MLP input has width {width}: the dictionary belongs to another model"
                )
        else:
            super().check(model)
        out = site_width(model, self.out_site)
        if out != self.d_in:
            raise ValueError(
                f"{self.describe()} writes width {self.d_in}, but this model's {self.out_site} "
                f"has width {out}"
            )
        if self.site == MLP_NORMALISED_IN:
            self.check_weights(model)

    def _extra_config(self) -> dict[str, Any]:
        return {"out_site": self.out_site}
