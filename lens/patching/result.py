"""PatchingResult: per-cell metric values with named dims, JSON + npz save/load, heatmaps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

DIMS = {"head": ("layer", "position", "head")}
DEFAULT_DIMS = ("layer", "position")


@dataclass
class PatchingResult:
    """What patching did to the metric, for every (site, layer, position[, head]) cell.

    Attributes:
        raw: site -> metric of every patched run, ``[pair, layer, position(, head)]``.
        clean_metric, corrupt_metric: the unpatched metric per pair, ``[pair]``.
        layers: the layers of the layer axis; position_labels: one label per position slot.
        method: ``"exact"`` (activation patching) or ``"attribution"`` (its linear estimate).
        direction: ``"denoise"`` (corrupt run, clean values in) or ``"noise"``.
    """

    raw: dict[str, Tensor]
    clean_metric: Tensor
    corrupt_metric: Tensor
    layers: list[int]
    position_labels: list[str]
    method: str = "exact"
    direction: str = "denoise"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def sites(self) -> list[str]:
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

        For ``"head"``, ``head=`` plots one head; without it every (layer, head) is a row.
        Saved to ``path`` when given; returns the matplotlib figure.
        """
        from lens.plots.patching import plot_patching

        return plot_patching(self, site, path, head=head)
