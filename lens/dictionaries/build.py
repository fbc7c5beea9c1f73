"""New dictionaries for a model: random initialisation bound to the model's shape."""

from __future__ import annotations

from typing import Any

import torch

from interventions.dictionary import (
    MLP_NORMALISED_IN,
    SAE,
    Activation,
    Transcoder,
    register_fingerprint,
    site_width,
)
from interventions.sites import resolve_layer
from lens.tuned_lens.translators import fingerprint

# SAE.check compares this (cached per model until a weight changes) with the recorded one
register_fingerprint(fingerprint)


def binding(model: Any) -> dict[str, Any]:
    """What ties a dictionary to a model: its shape and weight fingerprint (as the tuned lens;
    :meth:`SAE.check` enforces it unless ``strict=False``)."""
    cfg = model.cfg
    return {
        "n_layers": int(cfg.n_layers),
        "d_model": int(cfg.d_model),
        "fingerprint": fingerprint(model),
        "model_name": str(getattr(cfg, "model_name", "") or ""),
    }


def random_sae(
    model: Any,
    *,
    site: str,
    layer: int,
    n_latents: int,
    k: int | None = None,
    activation: Activation = "topk",
    out_site: str | None = None,
    seed: int = 0,
) -> SAE:
    """A freshly initialised dictionary for ``model`` (a :class:`Transcoder` when
    ``out_site`` is given): unit-norm random decoder rows, encoder = decoder transposed,
    zero biases (the usual TopK initialisation).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> sae = random_sae(model, site="resid_post", layer=-1, n_latents=256, k=16)
        >>> sae.d_in, sae.d_sae, sae.layer
        (64, 256, 2)
    """
    layer = resolve_layer(model, layer)
    d_in = int(model.cfg.d_model) if site == MLP_NORMALISED_IN else site_width(model, site)
    if isinstance(n_latents, bool) or not isinstance(n_latents, int) or n_latents < 1:
        raise ValueError(f"n_latents must be a positive int, got {n_latents!r}")
    gen = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(n_latents, d_in, generator=gen)
    w_dec /= w_dec.norm(dim=-1, keepdim=True)
    args = (w_dec.T.contiguous(), torch.zeros(n_latents), w_dec, torch.zeros(d_in))
    meta = {"binding": binding(model)}
    if out_site is not None:
        return Transcoder(
            *args, site=site, layer=layer, activation=activation, k=k, out_site=out_site, meta=meta
        )
    return SAE(*args, site=site, layer=layer, activation=activation, k=k, meta=meta)
