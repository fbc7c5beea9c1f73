"""Logit-lens figures: the layers x positions grid of top-1 tokens, and per-layer mass curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lens.plots import new_figure, save_figure, token_label
from lens.plots.common import text_colour


def plot_grid(result: Any, path: str | Path, row: int = 0, *, max_chars: int = 8) -> Path:
    """Top-1 token of every layer (rows, last layer on top) and position (columns) of prompt
    ``row``, each cell coloured by the top-1 probability, like the published logit-lens figures.

    Example:
        >>> import lens, tempfile, os
        >>> model = lens.load_model(lens.tiny_config("gpt2"))
        >>> res = lens.logit_lens(model, [[1, 2, 3]], positions="all", top_k=1)
        >>> os.path.getsize(res.plot_grid(os.path.join(tempfile.mkdtemp(), "g.png"))) > 0
        True
    """
    _check_row(result, row)
    cols = np.flatnonzero(result.valid[row])
    probs = result.top_probs[:, row, cols, 0]  # [layer, position]
    ids = result.top_ids[:, row, cols, 0]
    n_layer, n_pos = probs.shape
    fig = new_figure(max(4.0, 0.85 * n_pos + 2.5), max(2.5, 0.32 * n_layer + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(probs, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", origin="lower")
    font = 8 if n_pos <= 16 else 6
    for i in range(n_layer):
        for j in range(n_pos):
            text = token_label(result.token_str(ids[i, j]), max_chars)
            color = text_colour(image.cmap(image.norm(probs[i, j])))
            ax.text(j, i, text, ha="center", va="center", fontsize=font, color=color)
    ax.set_yticks(range(n_layer), result.layer_labels, fontsize=8)
    inputs = [token_label(result.token_str(t), max_chars) for t in result.input_ids[row, cols]]
    ax.set_xticks(range(n_pos), inputs, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("input token (position)")
    ax.set_ylabel(f"layer ({result.site})")
    method = getattr(result, "method", "logit lens")
    ax.set_title(f"{method}: top-1 token per layer, prompt {row}", fontsize=10)
    fig.colorbar(image, ax=ax, label="top-1 probability", shrink=0.8)
    return save_figure(fig, path)


def plot_mass(result: Any, path: str | Path, row: int | None = None, position: int = -1) -> Path:
    """Per-layer curves of the target probability and of every category's mass.

    ``row=None``: mean over prompts whose ``position`` is real, with a min-max band.
    """
    curves: dict[str, np.ndarray] = {}  # name -> [layer, batch]
    if result.target_probs is not None:
        ids = set(result.target_ids.tolist()) if row is None else {result.target_ids[row]}
        label = f"target {result.token_str(ids.pop())!r}" if len(ids) == 1 else "target"
        curves[label] = result.target_probs[:, :, position]
    if result.category_mass is not None:
        for j, name in enumerate(result.category_names):
            curves[name] = result.category_mass[:, :, position, j]
    if not curves:
        raise ValueError("plot_mass needs targets or categories: pass them to logit_lens")
    if row is not None:
        _check_row(result, row)
    keep = [row] if row is not None else list(np.flatnonzero(result.valid[:, position]))
    if not keep or not result.valid[keep, position].all():
        raise ValueError(f"position {position} holds no real token for the chosen prompts")
    fig = new_figure(6.5, 4.0)
    ax = fig.add_subplot()
    x = result.layers
    for name, values in curves.items():
        values = values[:, keep]
        (line,) = ax.plot(x, values.mean(axis=1), marker="o", markersize=3, label=name)
        if values.shape[1] > 1:
            ax.fill_between(
                x, values.min(axis=1), values.max(axis=1), alpha=0.15, color=line.get_color()
            )
    if len(x) <= 40:
        ax.set_xticks(x, [str(layer) for layer in x])
    ax.set_xlabel(f"layer ({result.site})")
    ax.set_ylabel("probability")
    ax.set_ylim(-0.02, 1.02)
    who = f"prompt {row}" if row is not None else f"mean of {len(keep)} prompts (band: min-max)"
    method = getattr(result, "method", "logit lens")
    ax.set_title(f"{method}: probability mass per layer, {who}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _check_row(result: Any, row: int) -> None:
    n = result.valid.shape[0]
    if not -n <= row < n:
        raise IndexError(f"row {row} out of range for {n} prompts")
