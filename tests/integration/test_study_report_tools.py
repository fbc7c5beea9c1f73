"""The shared report helpers: the heatmap writes each number in a colour readable on its cell,
the markdown table lays out rows as the header says. No model is needed."""

from __future__ import annotations

import numpy as np
import pytest

from lens.plots import new_figure
from lens.plots.common import heatmap, markdown_table, text_colour


def _luminance(rgba):
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


@pytest.mark.parametrize("cmap", ["viridis", "RdBu_r", "Purples", "Blues"])
def test_heatmap_text_contrasts_with_every_cell(cmap):
    from matplotlib import colormaps
    from matplotlib.colors import to_rgba

    values = np.linspace(-1.0, 1.0, 25).reshape(5, 5)
    ax = new_figure(4, 4).add_subplot()
    heatmap(ax, values, cmap=cmap, vmin=-1.0, vmax=1.0)
    assert len(ax.texts) == 25
    cm = colormaps[cmap]
    for text, value in zip(ax.texts, values.ravel()):
        cell = cm((value + 1.0) / 2.0)
        fg = to_rgba(text.get_color())
        hi, lo = sorted([_luminance(cell), _luminance(fg)], reverse=True)
        # WCAG contrast ratio; 3:1 is the minimum for large text, black/white on any cell
        # reaches at least about 4.6:1 when picked by luminance
        assert (hi + 0.05) / (lo + 0.05) >= 4.5, (cmap, value, text.get_color())
        assert text.get_text() == f"{value:.2f}"


def test_heatmap_darkest_and_lightest_cells():
    ax = new_figure(3, 3).add_subplot()
    heatmap(ax, [[0.0, 1.0]], cmap="viridis", vmin=0.0, vmax=1.0)
    assert [t.get_color() for t in ax.texts] == ["white", "black"]  # dark purple, light yellow


def test_heatmap_nan_cells_and_size_limit():
    ax = new_figure(3, 3).add_subplot()
    heatmap(ax, [[None, 0.5], [float("nan"), 0.25]], vmin=0, vmax=1, nan_text="n/a")
    assert [t.get_text() for t in ax.texts] == ["n/a", "0.50", "n/a", "0.25"]
    ax = new_figure(3, 3).add_subplot()
    heatmap(ax, np.zeros((13, 13)), max_cells=144)
    assert not ax.texts  # too many cells to write numbers in


def test_text_colour_extremes():
    assert text_colour((0.0, 0.0, 0.0, 1.0)) == "white"
    assert text_colour((1.0, 1.0, 1.0, 1.0)) == "black"


def test_markdown_table_layout_and_errors():
    table = markdown_table(["a", "b|c"], [[1, None], ["x|y", 2.5]])
    assert table.splitlines() == [
        "| a | b\\|c |",
        "|---|---|",
        "| 1 | None |",
        "| x\\|y | 2.5 |",
    ]
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        markdown_table(["a", "b"], [[1, 2, 3]])
