"""The heatmap and the markdown table every study report uses (one of each, shared).

``heatmap`` draws a matrix with its values written in the cells, each number in black or white
depending on how dark its cell is, so values stay readable on every colour of the map.
``markdown_table`` writes a header and rows as a GitHub-flavoured markdown table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def text_colour(rgba: Sequence[float]) -> str:
    """``"white"`` on dark colours, ``"black"`` on light ones (relative luminance, sRGB).

    Example:
        >>> text_colour((0.0, 0.0, 0.2, 1.0)), text_colour((1.0, 1.0, 0.9, 1.0))
        ('white', 'black')
    """

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgba[:3])
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "white" if luminance < 0.179 else "black"


def layer_ticks(ax: Any, layers: Sequence[int], at: Sequence[float] | None = None) -> None:
    """Label the x axis with layer numbers, thinned to at most 16 labels (the last layer kept).

    ``at`` gives the tick positions when they are not the layer numbers themselves (bars).

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> layer_ticks(ax, list(range(30)))
        >>> [t.get_text() for t in ax.get_xticklabels()][-3:]
        ['25', '27', '29']
    """
    where = [float(x) for x in layers] if at is None else list(at)
    step = max(1, -(-len(layers) // 16))
    keep = [i for i in range(len(layers)) if (len(layers) - 1 - i) % step == 0]  # last shown
    ax.set_xticks([where[i] for i in keep], [str(layers[i]) for i in keep])


def heatmap(
    ax: Any,
    matrix: Any,
    *,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    fmt: str = "{:.2f}",
    fontsize: float = 8,
    max_cells: int = 144,
    nan_text: str = "",
    **imshow: Any,
) -> Any:
    """Draw ``matrix`` (nested lists or array; None/NaN allowed) on ``ax`` with its values.

    Numbers are written when the matrix has at most ``max_cells`` cells, in the colour that
    :func:`text_colour` picks for their cell; NaN cells show ``nan_text``. Extra keyword
    arguments go to ``ax.imshow`` (e.g. ``aspect``, ``origin``). Returns the image (for a
    colorbar).

    Example:
        >>> from lens.plots import new_figure
        >>> ax = new_figure(3, 3).add_subplot()
        >>> im = heatmap(ax, [[0.0, 1.0], [None, 0.5]], vmin=0, vmax=1)
        >>> [t.get_color() for t in ax.texts]
        ['white', 'black', 'black']
    """
    m = np.array(
        [[np.nan if v is None else v for v in row] for row in np.asarray(matrix, dtype=object)],
        dtype=float,
    )
    image = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, **imshow)
    if m.size <= max_cells:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                value = m[i, j]
                if np.isnan(value):
                    if nan_text:
                        ax.text(j, i, nan_text, ha="center", va="center", fontsize=fontsize)
                    continue
                colour = text_colour(image.cmap(image.norm(value)))
                ax.text(
                    j,
                    i,
                    fmt.format(value),
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color=colour,
                )
    return image


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table: ``header`` cells, then one line per row (cells turned into ``str``,
    ``|`` inside a cell escaped).

    Example:
        >>> print(markdown_table(["a", "b"], [[1, "x"], [2, "y"]]))
        | a | b |
        |---|---|
        | 1 | x |
        | 2 | y |
    """
    width = len(header)
    bad = [r for r in rows if len(r) != width]
    if bad:
        raise ValueError(f"every row needs {width} cells like the header, got {len(bad[0])}")

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * width] + [line(r) for r in rows])
