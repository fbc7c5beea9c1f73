"""Per-layer hook sites of a model: names, layer numbers and activation width."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from interventions.base import check_layers
from lens.hooks import Probe, apply, resolve_hook

_D_MLP = ("mlp.hook_pre", "mlp.hook_post", "mlp.hook_pre_linear")
_D_MODEL = (
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
)


def as_layer_list(model: Any, layers: str | int | Sequence[int], what: str) -> list[int]:
    """``"all"`` | one layer | a list of layers -> a checked list of layer numbers."""
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"{what}: layers must be 'all', an int or a list, got {layers!r}")
        return list(range(int(model.cfg.n_layers)))
    out = [layers] if isinstance(layers, int) else list(layers)
    if not out or not all(isinstance(x, int) and not isinstance(x, bool) for x in out):
        raise ValueError(f"{what}: layers must be a non-empty list of ints, got {layers!r}")
    check_layers(out, model, what)
    return out


def site_width(model: Any, name: str) -> int:
    """Width of the activation at hook ``name``: its size per token (a probe forward if
    unknown; ``attn.hook_z`` is ``n_heads * d_head``, as ``lens.collect`` flattens it)."""
    resolve_hook(model, name)
    suffix = name.split(".", 2)[-1] if name.startswith("blocks.") else name
    if suffix in _D_MLP:
        return int(model.cfg.d_mlp)
    if suffix in _D_MODEL:
        return int(model.cfg.d_model)
    probe = Probe(name, positions="all")
    device = getattr(model.cfg, "device", None) or "cpu"
    with torch.no_grad(), apply(model, probes=[probe]):
        model(torch.zeros(1, 1, dtype=torch.long, device=device))
    return int(probe.value[0, 0].numel())


def layer_sites(
    model: Any, site: str, layers: str | int | Sequence[int] = "all"
) -> tuple[list[str], list[int], int]:
    """``(hook names, layer numbers, width)`` for ``blocks.{l}.{site}`` over ``layers``.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> layer_sites(model, "mlp.hook_pre", [0, 2])
        (['blocks.0.mlp.hook_pre', 'blocks.2.mlp.hook_pre'], [0, 2], 128)
    """
    layer_list = as_layer_list(model, layers, f"site {site!r}")
    names = [f"blocks.{layer}.{site}" for layer in layer_list]
    for name in names:
        try:
            resolve_hook(model, name)
        except KeyError as exc:
            raise ValueError(f"this model has no site {name!r}: {exc.args[0]}") from None
    widths = {site_width(model, n) for n in names[:1]}
    return names, layer_list, widths.pop()
