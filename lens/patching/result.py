"""PatchingResult: per-cell metric values with named dims, JSON + npz save/load, heatmaps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

DIMS = {"z": ("layer", "position", "head")}
DEFAULT_DIMS = ("layer", "position")


def _token_text(model: Any, ids: Tensor | None) -> list[str] | None:
    tok = getattr(model, "tokenizer", None)
    if ids is None:
        return None
    if tok is None:
        return [f"id:{int(i)}" for i in ids]
    return [tok.decode([int(i)]) for i in ids]


def _prompts(b: Any) -> list[Any]:
    if b.texts is not None:
        return list(b.texts)
    return [row[m.bool()].tolist() for row, m in zip(b.tokens.cpu(), b.attention_mask.cpu())]


def _metric_name(pairs: Any) -> str:
    metric = pairs.metric
    if pairs.answer is not None:
        diff = " - logit[wrong]" if pairs.wrong is not None else ""
        return f"logit[answer]{diff} at the last real token"
    return str(getattr(metric, "__name__", type(metric).__name__))


def inputs_record(
    model: Any, pairs: Any, *, sites: list[str], positions: Any, layers: list[int]
) -> dict[str, Any]:
    """What a patching result was computed from (goes into ``meta`` and result.json): lens's
    version, the model (name and weight fingerprint), the prompts, answer/wrong ids and text,
    the metric, sites, positions and layers."""
    import lens
    from lens.tuned_lens.translators import fingerprint

    return {
        "lens_version": lens.__version__,
        "model": str(getattr(model.cfg, "model_name", "") or type(model).__name__),
        "model_fingerprint": fingerprint(model),
        "clean_prompts": _prompts(pairs.clean),
        "corrupt_prompts": _prompts(pairs.corrupt),
        "answer_ids": None if pairs.answer is None else pairs.answer.tolist(),
        "answer_tokens": _token_text(model, pairs.answer),
        "wrong_ids": None if pairs.wrong is None else pairs.wrong.tolist(),
        "wrong_tokens": _token_text(model, pairs.wrong),
        "metric": _metric_name(pairs),
        "sites": list(sites),
        "positions": positions if isinstance(positions, str) else list(pairs.slots[:, 0].tolist()),
        "layers": list(layers),
    }


@dataclass
class PatchingResult:
    """What patching did to the metric, for every (site, layer, position[, head]) cell.

    Attributes:
        raw: site -> metric of every patched run, ``[pair, layer, position(, head)]``.
        clean_metric, corrupt_metric: the unpatched metric per pair, ``[pair]``.
        layers: the layers of the layer axis; position_labels: one label per position slot.
        method: ``"exact"`` (activation patching) or ``"attribution"`` (its linear estimate).
        direction: ``"denoise"`` (corrupt run, clean values in) or ``"noise"``.
        meta: what the result was computed from (:func:`inputs_record`: lens version, model
            and its fingerprint, prompts, answer/wrong ids and text, metric, sites, positions).
    """

    raw: dict[str, Tensor]
    clean_metric: Tensor
    corrupt_metric: Tensor
    layers: list[int]
    position_labels: list[str]
    method: str = "exact"
    direction: str = "denoise"
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        n_pairs = int(self.clean_metric.shape[0])
        return (
            f"PatchingResult({self.method}, {self.direction}, sites={self.sites}, "
            f"layers={self.layers}, positions={self.position_labels}, pairs={n_pairs})"
        )

    @property
    def sites(self) -> list[str]:
        """The sites patched (:mod:`interventions.sites` names), in order."""
        return list(self.raw)

    def dims(self, site: str) -> tuple[str, ...]:
        """Names of the axes of :meth:`values` for ``site``."""
        return DIMS.get(site, DEFAULT_DIMS)

    def values(self, site: str) -> Tensor:
        """Mean over pairs, normalised: 0 = the corrupted run, 1 = the clean run."""
        clean, corrupt = self.clean_metric.mean(), self.corrupt_metric.mean()
        return (self.raw[self._site(site)].mean(0) - corrupt) / (clean - corrupt)

    def per_pair(self, site: str) -> Tensor:
        """``[pair, ...]``, each pair normalised by its own clean and corrupted metric."""
        raw = self.raw[self._site(site)]
        shape = (-1,) + (1,) * (raw.ndim - 1)
        corrupt = self.corrupt_metric.view(shape)
        return (raw - corrupt) / (self.clean_metric.view(shape) - corrupt)

    def _site(self, site: str) -> str:
        if site not in self.raw:
            raise KeyError(f"site {site!r} was not patched; this result has {self.sites}")
        return site

    def save(self, folder: str | Path) -> Path:
        """Write ``result.json`` (metadata) and ``arrays.npz`` (numbers) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"raw.{k}": v.double().cpu().numpy() for k, v in self.raw.items()}
        arrays["clean_metric"] = self.clean_metric.double().cpu().numpy()
        arrays["corrupt_metric"] = self.corrupt_metric.double().cpu().numpy()
        np.savez(folder / "arrays.npz", allow_pickle=False, **arrays)
        meta = {
            "sites": self.sites,
            "dims": {s: list(self.dims(s)) for s in self.sites},
            "layers": self.layers,
            "position_labels": self.position_labels,
            "method": self.method,
            "direction": self.direction,
            "meta": self.meta,
            "clean_metric": self.clean_metric.double().cpu().tolist(),
            "corrupt_metric": self.corrupt_metric.double().cpu().tolist(),
            "values": {s: self.values(s).tolist() for s in self.sites},
        }
        (folder / "result.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> PatchingResult:
        folder = Path(folder)
        meta = json.loads((folder / "result.json").read_text())
        with np.load(folder / "arrays.npz", allow_pickle=False) as data:
            raw = {s: torch.from_numpy(data[f"raw.{s}"]) for s in meta["sites"]}
            clean = torch.from_numpy(data["clean_metric"])
            corrupt = torch.from_numpy(data["corrupt_metric"])
        return cls(
            raw,
            clean,
            corrupt,
            meta["layers"],
            meta["position_labels"],
            meta["method"],
            meta["direction"],
            meta["meta"],
        )

    def plot(self, site: str, path: str | Path | None = None, head: int | None = None) -> Any:
        """Heatmap of :meth:`values` (layers x positions, labelled with the tokens).

        For ``"z"``, ``head=`` plots one head; without it every (layer, head) is a row.
        Saved to ``path`` when given; returns the matplotlib figure.
        """
        from lens.plots.patching import plot_patching

        return plot_patching(self, site, path, head=head)
