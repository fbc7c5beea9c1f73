"""Generic heatmap and line-plot views (plain arrays in, :class:`~lens.html.page.View` out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from lens.html.page import View, rounded

__all__ = ["heatmap_view", "lines_view"]

Scale = Literal["prob", "seq", "diverging"]


def heatmap_view(
    z: Any,
    *,
    rows: Sequence[Any],
    cols: Sequence[Any],
    title: str = "",
    note: str = "",
    value_label: str = "value",
    row_title: str = "row",
    col_title: str = "column",
    scale: Scale = "seq",
    flip_rows: bool = False,
    panels: Sequence[tuple[Any, ...]] | None = None,
) -> View:
    """A rows x cols heatmap; hover shows both labels and the value (4 decimals).

    ``panels`` ``(name, z)`` or ``(name, z, rows)`` give tabs instead of the single ``z`` (a
    panel with its own ``rows`` labels may have another number of rows).

    Example:
        >>> v = heatmap_view([[0.25, 0.5]], rows=["layer 0"], cols=["a", "b"])
        >>> v.kind, v.data["panels"][0]["z"]
        ('heatmap', [[0.25, 0.5]])
    """
    named = list(panels) if panels is not None else [(title or value_label, z)]
    out = []
    for name, values, *own in named:
        arr = np.asarray(values, dtype=float)
        labels = list(own[0]) if own else list(rows)
        if arr.shape != (len(labels), len(cols)):
            raise ValueError(
                f"panel {name!r} has shape {arr.shape}, labels say {(len(labels), len(cols))}"
            )
        panel = {"name": str(name), "z": rounded(arr), "valueLabel": value_label}
        if own:
            panel["rows"] = [str(r) for r in labels]
        out.append(panel)
    data = {
        "rows": [str(r) for r in rows],
        "cols": [str(c) for c in cols],
        "rowTitle": row_title,
        "colTitle": col_title,
        "scale": scale,
        "flipRows": flip_rows,
        "panels": out,
    }
    return View("heatmap", title, data, note)


def lines_view(
    x: Sequence[Any],
    series: dict[str, Any],
    *,
    title: str = "",
    note: str = "",
    x_label: str = "x",
    y_range: tuple[float, float] | None = None,
) -> View:
    """Line plot of named series over ``x``; hover shows every series' value at that x.

    Example:
        >>> lines_view([0, 1, 2], {"p": [0.1, 0.5, 0.9]}).data["series"][0]["y"]
        [0.1, 0.5, 0.9]
    """
    data = {
        "x": [str(v) for v in x],
        "series": [{"name": k, "y": rounded(v)} for k, v in series.items()],
        "xLabel": x_label,
        "yRange": list(y_range) if y_range else None,
    }
    return View("lines", title, data, note)
