"""Sites and layers: the one vocabulary every lens and interventions API uses.

A *site* names a per-layer activation with TransformerLens's short names; :func:`hook_name`
maps ``(site, layer)`` to the hook that holds it, and :func:`resolve_layers` turns a ``layers``
argument into checked layer numbers.

===============  ======================================  ===========================
site             hook at layer ``l``                     per token
===============  ======================================  ===========================
``resid_pre``    ``blocks.l.hook_resid_pre``             ``d_model`` (input of block l)
``resid_mid``    ``blocks.l.hook_resid_mid``             ``d_model`` (after attention)
``resid_post``   ``blocks.l.hook_resid_post``            ``d_model`` (output of block l)
``attn_out``     ``blocks.l.hook_attn_out``              ``d_model``
``mlp_in``       ``blocks.l.ln2.hook_in``                ``d_model`` (input of the MLP sublayer)
``mlp_out``      ``blocks.l.hook_mlp_out``               ``d_model``
``mlp_pre``      ``blocks.l.mlp.hook_pre``               ``d_mlp`` (neuron pre-activations)
``mlp_post``     ``blocks.l.mlp.hook_post``              ``d_mlp`` (neuron activations)
``z``            ``blocks.l.attn.hook_z``                ``n_heads x d_head`` (per head)
===============  ======================================  ===========================

**Default site rule.** "Layer L" never stands alone: every API that takes a layer takes a
``site``, and every result records the site (and layers, positions) it read. APIs that *read*
what layer L has computed (logit lens, tuned lens, shortcuts) default to ``resid_post``, the
output of block L, so their last layer is what the unembedding sees. APIs that *write* into or
contrast the input of layer L (steering with ``ActivationAddition``, ``DirectionAblation``,
diff-in-means directions, activation patching) default to ``resid_pre``, the input of block L,
so an edit at layer L is seen by block L itself. Reprs and reports print the site.

**Layers.** One int, a list of ints or ``"all"``; negative layers count from the end
(``-1`` is the last block), duplicates are refused, order is kept.

Writes at ``resid_mid`` do not reach the residual stream: in TransformerLens 4.3's bridge it
aliases ``ln2.hook_in``, so an edit there changes only the MLP's input (:data:`RESID_SITES`,
the sites an edit of the residual stream may use, leaves it out). ``mlp_in`` is that same
hook: TransformerLens 4.3's ``blocks.l.hook_mlp_in`` exists but never fires, while
``ln2.hook_in`` holds the MLP sublayer's input (the residual stream after attention, before the
norm), and an edit there changes only what the MLP reads, as HookedTransformer's did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar, get_args

Site = Literal[
    "resid_pre",
    "resid_mid",
    "resid_post",
    "attn_out",
    "mlp_in",
    "mlp_out",
    "mlp_pre",
    "mlp_post",
    "z",
]
SITES: tuple[Site, ...] = get_args(Site)

# Sites whose [batch, pos, d_model] activation an edit may change so that the residual stream
# changes (resid_mid is not one: see the module docstring).
ResidSite = Literal["resid_pre", "resid_post", "attn_out", "mlp_out"]
RESID_SITES: tuple[ResidSite, ...] = get_args(ResidSite)
# Per-neuron sites ([batch, pos, d_mlp]).
NeuronSite = Literal["mlp_post", "mlp_pre"]
NEURON_SITES: tuple[NeuronSite, ...] = get_args(NeuronSite)

_HOOKS: dict[str, str] = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_in": "blocks.{layer}.ln2.hook_in",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "mlp_pre": "blocks.{layer}.mlp.hook_pre",
    "mlp_post": "blocks.{layer}.mlp.hook_post",
    "z": "blocks.{layer}.attn.hook_z",
}
_OLD = {template.split(".", 2)[2]: site for site, template in _HOOKS.items()}
_OLD["hook_mlp_in"] = "mlp_in"  # TransformerLens's name; it never fires in 4.3's bridge
_RENAMED = {"head": "z"}  # lens 0.2 patching's name for the per-head site

SiteT = TypeVar("SiteT", bound=str)


def check_site(site: Any, allowed: Sequence[SiteT] = SITES, what: str = "site") -> SiteT:  # type: ignore[assignment]
    """``site`` if it is one of ``allowed``; else a ValueError naming the choices (and the
    short name when a hook name such as ``"hook_resid_pre"`` was given).

    Example:
        >>> check_site("resid_pre")
        'resid_pre'
        >>> check_site("hook_resid_pre")
        Traceback (most recent call last):
        ...
        ValueError: site 'hook_resid_pre' is a hook name; sites use short names: write 'resid_pre'
    """
    if isinstance(site, str) and site in allowed:
        return site  # type: ignore[return-value]
    if isinstance(site, str) and site in _OLD:
        raise ValueError(
            f"{what} {site!r} is a hook name; sites use short names: write {_OLD[site]!r}"
        )
    if isinstance(site, str) and site in _RENAMED:
        raise ValueError(
            f"{what} {site!r} is now called {_RENAMED[site]!r}: write {_RENAMED[site]!r}"
        )
    raise ValueError(f"{what} must be one of {list(allowed)}, got {site!r}")


def hook_name(site: Site | str, layer: int) -> str:
    """The hook that holds ``site`` at (non-negative, resolved) ``layer``.

    Example:
        >>> hook_name("resid_post", 2), hook_name("z", 0)
        ('blocks.2.hook_resid_post', 'blocks.0.attn.hook_z')
    """
    check_site(site)
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ValueError(f"layer must be a resolved layer number >= 0, got {layer!r}")
    return _HOOKS[site].format(layer=layer)


def site_of(name: str) -> tuple[Site, int] | None:
    """``(site, layer)`` of a hook name :func:`hook_name` makes, else None (outside hooks only:
    inside a hook, ``hook.name`` may be an alias target).

    Example:
        >>> site_of("blocks.3.mlp.hook_post"), site_of("hook_embed")
        (('mlp_post', 3), None)
    """
    parts = name.split(".", 2)
    if len(parts) < 3 or parts[0] != "blocks" or not parts[1].isdigit():
        return None
    site = _OLD.get(parts[2])
    return None if site is None else (site, int(parts[1]))  # type: ignore[return-value]


def n_layers(model: Any) -> int:
    """The number of blocks of ``model``."""
    return int(model.cfg.n_layers)


def layer_range(model: Any) -> str:
    """``"this model has layers 0..N-1"``: the phrase every layer error ends with."""
    n = n_layers(model)
    return f"this model has layers 0..{n - 1} (or -{n}..-1 counted from the end)"


def resolve_layer(model: Any, layer: Any, *, what: str = "layer") -> int:
    """One layer number in ``0..n_layers-1``; a negative ``layer`` counts from the end.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> resolve_layer(model, -1)
        2
    """
    if isinstance(layer, bool) or not isinstance(layer, int):
        try:  # numpy / torch integers
            if isinstance(layer, (bool, str, float)) or int(layer) != layer:
                raise TypeError
            layer = int(layer)
        except (TypeError, ValueError):
            raise TypeError(f"{what} must be an int, got {layer!r}") from None
    n = n_layers(model)
    if not -n <= layer < n:
        raise ValueError(f"{what} {layer} is out of range: {layer_range(model)}")
    return layer % n


def resolve_layers(model: Any, layers: Any, *, what: str = "layers") -> list[int]:
    """``"all"``, one layer or a sequence of layers -> a list of layer numbers ``>= 0``.

    Negative layers count from the end; order is kept; duplicates (after counting from the
    end) and empty lists are refused.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> resolve_layers(model, "all"), resolve_layers(model, -1), resolve_layers(model, [0, -1])
        ([0, 1, 2], [2], [0, 2])
    """
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"{what} must be 'all', an int or a list of ints, got {layers!r}")
        return list(range(n_layers(model)))
    if isinstance(layers, (int, bool)) or not isinstance(layers, Sequence):
        if hasattr(layers, "tolist") and getattr(layers, "ndim", 0) == 1:
            layers = layers.tolist()  # a 1-D numpy array or tensor
        else:
            return [resolve_layer(model, layers, what="layer" if what == "layers" else what)]
    item = "layer" if what == "layers" else f"{what}: layer"
    out = [resolve_layer(model, x, what=item) for x in layers]
    if not out:
        raise ValueError(f"{what} is empty; give 'all', an int or a list ({layer_range(model)})")
    if len(set(out)) != len(out):
        raise ValueError(f"{what} has duplicates: {list(layers)} means layers {out}")
    return out
