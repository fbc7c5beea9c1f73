"""The patching heatmap: normalised effect per layer (rows) and position (columns)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lens.plots import new_figure, save_figure, token_label


def plot_patching(
    result: Any, site: str, path: str | Path | None = None, head: int | None = None
) -> Any:
    """Heatmap of ``result.values(site)`` (layers x positions, labelled with the tokens), with
    a labelled colour bar (0 = corrupted run, 1 = clean run) and axis titles; the title wraps
    onto two lines so it is never clipped.

    For ``"z"`` (per head), ``head=`` plots one head; without it every (layer, head) is a row. Saved
    to ``path`` when given; returns the figure.

    Example:
        >>> import lens, tempfile, os
        >>> from lens.patching import activation_patching
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = activation_patching(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, wrong=6,
        ...                           sites=["resid_pre"], progress=False)
        >>> path = os.path.join(tempfile.mkdtemp(), "p.png")
        >>> fig = plot_patching(res, "resid_pre", path)
        >>> fig.axes[1].get_ylabel().splitlines()
        ['normalised metric', '(0 = corrupt run, 1 = clean run)']
    """
    values = result.values(site)
    rows = [f"L{layer}" for layer in result.layers]
    if site == "z":
        if head is not None:
            values = values[..., head]
            rows = [f"L{layer}H{head}" for layer in result.layers]
        else:
            n_heads = values.shape[-1]
            values = values.permute(0, 2, 1).reshape(-1, values.shape[1])
            rows = [f"L{layer}H{h}" for layer in result.layers for h in range(n_heads)]
    data = values.double().numpy()
    fig = new_figure(max(5.5, 0.5 * data.shape[1] + 2.5), max(3.2, 0.25 * data.shape[0] + 2.0))
    ax = fig.add_subplot()
    finite = data[np.isfinite(data)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    image = ax.imshow(data, cmap="RdBu", vmin=-(bound or 1.0), vmax=bound or 1.0, aspect="auto")
    labels = [token_label(t, 16) for t in result.position_labels]
    ax.set_xticks(range(data.shape[1]), labels, rotation=60, ha="right")
    ax.set_yticks(range(data.shape[0]), rows, fontsize=7 if len(rows) > 30 else 9)
    ax.set_xlabel("position (input token)")
    ax.set_ylabel("layer and head" if site == "z" and head is None else "layer")
    method = "activation" if result.method == "exact" else result.method
    ax.set_title(f"{method} patching ({result.direction})\nsite {site}", fontsize=10)
    fig.colorbar(image, ax=ax, label="normalised metric\n(0 = corrupt run, 1 = clean run)")
    if path is not None:
        save_figure(fig, path)
    return fig
