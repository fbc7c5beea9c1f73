"""The patchscope figure: top-1 token per (source layer, target layer), coloured by its
probability (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_pairs(result: Any, path: str | Path, *, max_chars: int = 8) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    """Write the grid of a :class:`~lens.patchscope.PatchscopeResult` (or, for same-layer
    pairs, one column per layer) to ``path`` (PNG)."""
    rows: list[Any]
    cols: list[Any]
    diagonal = bool(np.all(result.source_layers == result.target_layers))
    if diagonal:
        layers = [int(x) for x in result.source_layers]
        probs = result.top_probs[:, 0][None]
        ids = result.top_ids[:, 0][None]
        rows, cols = ["same layer"], layers
    else:
        rows, cols, probs = result.grid("top_probs")
        _, _, ids = result.grid("top_ids")
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(cols) + 2), max(2, 0.45 * len(rows) + 1.5)))
    image = ax.imshow(probs, vmin=0, vmax=1, cmap="Blues", aspect="auto")
    for i in range(probs.shape[0]):
        for j in range(probs.shape[1]):
            if ids[i, j] >= 0:
                text = result.token_str(ids[i, j])[:max_chars]
                colour = "white" if probs[i, j] > 0.6 else "black"
                ax.text(j, i, repr(text)[1:-1], ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel("layer" if diagonal else "target layer")
    ax.set_ylabel("" if diagonal else "source layer")
    ax.set_title(f"patchscope ({result.target_name}, {result.site}): top-1 next token")
    fig.colorbar(image, ax=ax, label="probability")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
