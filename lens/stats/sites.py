"""Per-layer hook sites of a model for the statistics: hook names, layer numbers and width."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interventions import bridge as hb
from interventions.sites import Site, check_site, hook_name, resolve_layers
from lens.hooks import resolve_hook


def site_width(model: Any, site: Site) -> int:
    """Width of ``site``'s activation per token (``z`` is ``n_heads * d_head``, flattened as
    ``lens.collect`` does).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> site_width(model, "mlp_pre"), site_width(model, "resid_pre"), site_width(model, "z")
        (128, 64, 64)
    """
    check_site(site)
    if site in ("mlp_pre", "mlp_post"):
        return int(model.cfg.d_mlp)
    if site == "z":
        return hb.n_heads(model) * int(model.cfg.d_head)
    return int(model.cfg.d_model)


def layer_sites(
    model: Any, site: Site, *, layers: str | int | Sequence[int] = "all"
) -> tuple[list[str], list[int], int]:
    """``(hook names, layer numbers, width)`` of ``site`` over ``layers`` (negative layers
    count from the end; see :mod:`interventions.sites`).

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> layer_sites(model, "mlp_pre", layers=[0, -1])
        (['blocks.0.mlp.hook_pre', 'blocks.2.mlp.hook_pre'], [0, 2], 128)
    """
    check_site(site)
    layer_list = resolve_layers(model, layers, what=f"layers of site {site!r}")
    names = [hook_name(site, layer) for layer in layer_list]
    for name in names:
        try:
            resolve_hook(model, name)
        except KeyError as exc:
            raise ValueError(f"this model has no site {name!r}: {exc.args[0]}") from None
    return names, layer_list, site_width(model, site)
