"""``TunedLens``: one affine translator per layer, bound to the model it was trained on.

A translator maps layer l's residual ``h`` to ``W_l h + b_l``, which is then decoded like the
logit lens does (final norm with its own statistics, unembedding). Saved as
``translators.safetensors`` (keys ``"{layer}.weight"``, ``"{layer}.bias"``) and
``tuned_lens.json`` (layers, site, the model's shape and weight fingerprint, how it was
trained); no pickle.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interventions.affine import Affine
from interventions.sites import check_site, resolve_layers
from lens.stats.checkpoint import model_fingerprint

FORMAT = "lens.tuned_lens/1"
WEIGHTS_FILE = "translators.safetensors"
META_FILE = "tuned_lens.json"
SITES = ("resid_post", "resid_pre", "resid_mid")

_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fingerprint(model: Any) -> str:
    """``lens.stats.model_fingerprint`` cached per model until a parameter changes in place
    or is moved (tracked by tensor version counters and storage addresses), so repeated lens
    calls do not re-hash the weights."""
    cached = _FINGERPRINTS.get(model)
    params = cached[0] if cached is not None else list(model.parameters())
    key = tuple((p.data_ptr(), p._version, p.dtype) for p in params)
    if cached is not None and cached[1] == key:
        return cached[2]
    value = model_fingerprint(model)
    _FINGERPRINTS[model] = (params, key, value)
    return value


def model_binding(model: Any) -> dict[str, Any]:
    """What ties translators to a model: its shape and weight fingerprint."""
    cfg = model.cfg
    return {
        "n_layers": int(cfg.n_layers),
        "d_model": int(cfg.d_model),
        "d_vocab": int(cfg.d_vocab),
        "fingerprint": fingerprint(model),
        "name": str(getattr(cfg, "model_name", "") or ""),
    }


@dataclass(eq=False)
class TunedLens:
    """Per-layer affine translators (``maps[i]`` belongs to ``layers[i]``) for one model.

    Build with :meth:`identity` (then :func:`lens.tuned_lens.train`) or :meth:`load`.
    ``strict=False`` skips the weight-fingerprint check (shapes are always checked), e.g. to
    read an edited copy of the model the translators were trained on.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> tl = TunedLens.identity(model)
        >>> tl.layers, tl.maps[0].weight.shape
        ([0, 1, 2], torch.Size([64, 64]))
    """

    maps: list[Affine]
    layers: list[int]
    site: str
    binding: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)
    strict: bool = True

    def __post_init__(self) -> None:
        check_site(self.site, SITES, "tuned lens site")
        if len(self.maps) != len(self.layers) or not self.layers:
            raise ValueError(f"{len(self.maps)} translators for layers {self.layers}")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers repeat: {self.layers}")
        d = int(self.binding["d_model"])
        for layer, m in zip(self.layers, self.maps):
            if m.weight.shape != (d, d):
                raise ValueError(
                    f"translator of layer {layer} is {tuple(m.weight.shape)}, not ({d}, {d})"
                )
        json.dumps(self.record)  # must be JSON-safe

    @classmethod
    def identity(
        cls, model: Any, layers: str | int | Sequence[int] = "all", site: str = "resid_post"
    ) -> TunedLens:
        """Identity translators (zero bias): decoding through them is the logit lens.
        ``layers`` follow :func:`interventions.sites.resolve_layers` (negative: from the end)."""
        d = int(model.cfg.d_model)
        chosen = resolve_layers(model, layers)
        return cls([Affine.identity(d) for _ in chosen], chosen, site, model_binding(model))

    # ------------------------------------------------------------------ use
    def check(self, model: Any, layers: Sequence[int] | None = None, site: str | None = None):
        """Raise a ValueError unless these translators fit ``model`` (and ``layers``/``site``)."""
        cfg, b = model.cfg, self.binding
        for key in ("n_layers", "d_model", "d_vocab"):
            if int(getattr(cfg, key)) != int(b[key]):
                raise ValueError(
                    f"these translators were trained on a model with {key}={b[key]}, "
                    f"this one has {key}={getattr(cfg, key)}: train translators for this model "
                    "with lens.tuned_lens.train(model, corpus)"
                )
        if self.strict and fingerprint(model) != b["fingerprint"]:
            raise ValueError(
                "these translators were trained on other weights (fingerprint "
                f"{b['fingerprint']}, this model {fingerprint(model)}; dtype counts): train "
                "them for this model, or set strict=False to use them anyway"
            )
        if site is not None and site != self.site:
            raise ValueError(f"these translators read site {self.site!r}, not {site!r}")
        if layers is not None:
            missing = sorted(set(layers) - set(self.layers))
            if missing:
                raise ValueError(
                    f"no translator for layers {missing}: these cover layers {self.layers}"
                )

    def translate(
        self, resid: Float[Tensor, "layer rows d_model"], layers: Sequence[int]
    ) -> Float[Tensor, "layer rows d_model"]:
        """Apply layer ``layers[i]``'s translator to ``resid[i]`` (float32 out)."""
        index = {layer: i for i, layer in enumerate(self.layers)}
        return torch.stack(
            [self.maps[index[layer]](resid[i].float()) for i, layer in enumerate(layers)]
        )

    # ------------------------------------------------------------------ files
    def save(self, folder: str | Path) -> Path:
        """Write ``translators.safetensors`` and ``tuned_lens.json`` into ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, Tensor] = {}
        for layer, m in zip(self.layers, self.maps):
            tensors |= m.tensors(f"{layer}.")
        save_file(tensors, str(folder / WEIGHTS_FILE))
        meta = {
            "format": FORMAT,
            "layers": self.layers,
            "site": self.site,
            "model": self.binding,
            "training": self.record,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, strict: bool = True) -> TunedLens:
        """Read translators written by :meth:`save` (float32 in memory)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        for name in (WEIGHTS_FILE, META_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder / name} not found: not a tuned-lens folder (write one with "
                    "`lens tuned-lens train` or TunedLens.save)"
                )
        meta = json.loads((folder / META_FILE).read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder / META_FILE} is not a {FORMAT} record")
        tensors = {k: v.float() for k, v in load_file(str(folder / WEIGHTS_FILE)).items()}
        maps = [Affine.from_tensors(tensors, f"{layer}.") for layer in meta["layers"]]
        layers, site = list(meta["layers"]), meta["site"]
        return cls(maps, layers, site, meta["model"], meta["training"], strict)
