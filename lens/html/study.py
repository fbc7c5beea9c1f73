"""Study pages (the same findings and tables as report.md, arrays as interactive plots, PNGs
inline) and the ``lens demo`` index page linking every study's page."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lens.html.heatmap import heatmap_view, lines_view
from lens.html.page import Report, View

__all__ = ["array_views", "index_page", "markdown_html", "study_page", "write_study_html"]

MAX_PLOTS = 12


def markdown_html(text: str) -> str:
    """Markdown (report.md's tables, lists, code) to HTML with raw HTML escaped and images
    shown as their alt text (the page loads nothing).

    Example:
        >>> markdown_html("![plot](p.png) <b>")
        '<p>plot &lt;b&gt;</p>\\n'
        >>> markdown_html("| a |\\n|---|\\n| <b> |")
        '<table>\\n<thead>\\n<tr>\\n<th>a</th>\\n</tr>\\n</thead>\\n<tbody>\\n<tr>\\n<td>&lt;b&gt;</td>\\n</tr>\\n</tbody>\\n</table>\\n'
    """  # noqa: E501
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.add_render_rule("image", lambda _self, tokens, idx, *_: html.escape(tokens[idx].content))
    return str(md.render(text))


def _numeric(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) or x is None


def _matrix(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) >= 2
        and all(isinstance(r, list) and len(r) == len(v[0]) >= 2 for r in v)
        and all(_numeric(x) for r in v for x in r)
        and any(x is not None for r in v for x in r)
    )


def _vector(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) >= 3
        and all(_numeric(x) for x in v)
        and any(x is not None for x in v)
    )


def array_views(data: Any, *, limit: int = MAX_PLOTS) -> list[View]:
    """Interactive views of the numeric arrays in a study's data: each 2-D array a heatmap,
    the 1-D arrays of one dict that share a length one line plot (rows / x: a ``layers`` list
    of that length when the dict has one, else the index)."""
    views: list[View] = []

    def walk(node: Any, path: str) -> None:
        if len(views) >= limit:
            return
        if isinstance(node, dict):
            vectors: dict[int, dict[str, Any]] = {}
            layers: Any = node.get("layers")
            for key, value in node.items():
                where = f"{path}.{key}" if path else str(key)
                if _matrix(value) and len(value) <= 256 and len(value[0]) <= 256:
                    by_layer = isinstance(layers, list) and len(layers) == len(value)
                    views.append(
                        heatmap_view(
                            np.array(value, dtype=float),
                            rows=layers if by_layer else list(range(len(value))),
                            cols=list(range(len(value[0]))),
                            title=where,
                            row_title="layer" if by_layer else "row",
                        )
                    )
                elif _vector(value) and len(value) <= 4096 and key != "layers":
                    vectors.setdefault(len(value), {})[str(key)] = value
                else:
                    walk(value, where)
            for n, series in vectors.items():
                x = layers if isinstance(layers, list) and len(layers) == n else list(range(n))
                name = f"{path}: " if path else ""
                views.append(
                    lines_view(
                        x,
                        series,
                        title=name + ", ".join(series)[:120],
                        x_label="layer" if x is layers else "index",
                    )
                )
        elif isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
            for i, item in enumerate(node[:4]):
                walk(item, f"{path}[{i}]")

    walk(data, "")
    return views[:limit]


def _findings_html(findings: Sequence[Any]) -> str:
    rows = "".join(
        f'<tr><td class="{"ok" if f.reproduced else "bad"}">'
        f"{'reproduces' if f.reproduced else 'does NOT reproduce'}</td>"
        f"<td>{html.escape(f.claim)}</td><td>{html.escape(f.evidence)}</td></tr>"
        for f in findings
    )
    return f"<table><tr><th>result</th><th>claim</th><th>evidence</th></tr>{rows}</table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.name)
    return f'<figure><img class="plot" alt="{name}" src="data:image/png;base64,{data}">' + (
        f"<figcaption>{name}</figcaption></figure>"
    )


def study_page(result: Any, *, plots: Sequence[Path] = ()) -> Report:
    """The page of one study result (:class:`lens.studies.base.StudyResult`)."""
    page = Report(result.title, f"model {result.model} · {result.headline()}")
    page.add(View("static", "Findings", html=_findings_html(result.findings)))
    body = result.report_body()
    if body:
        page.add(View("static", "Details", html=markdown_html(body)))
    page.add(*result.html_views())
    page.add(*array_views(result.to_dict()["data"]))
    pngs = [p for p in plots if Path(p).suffix == ".png" and Path(p).is_file()]
    if pngs:
        page.add(View("static", "Plots", html="".join(_image(Path(p)) for p in pngs)))
    config = html.escape(json.dumps(result.config, indent=1))
    page.add(View("static", "Config", html=f"<pre>{config}</pre>"))
    return page


def write_study_html(result: Any, *, folder: str | Path, plots: Sequence[Path] = ()) -> Path:
    """Write ``folder/report.html`` for a study result; return its path."""
    return study_page(result, plots=plots).write(Path(folder) / "report.html")


def index_page(
    rows: Sequence[tuple[str, Any, float]], *, model: str, controls: str | None = None
) -> Report:
    """The demo index: one row per study (name, result, seconds) linking ``NAME/report.html``;
    ``controls``, a markdown table of the positive controls (``lens.studies.demo``), first.

    Example:
        >>> from lens.studies.base import Finding, StudyResult
        >>> r = StudyResult(config={}, model="m", data={}, findings=[Finding("c", True, "e")])
        >>> "study/report.html" in index_page([("study", r, 1.0)], model="m").to_html()
        True
    """
    page = Report(f"lens demo on {model}", "each study's page opens from the link")
    if controls:
        page.add(
            View("static", "Positive controls (planted organism)", html=markdown_html(controls))
        )
    table = "".join(
        f'<tr><td><a href="{html.escape(name)}/report.html">{html.escape(result.title)}</a></td>'
        f'<td>{html.escape(result.headline())}</td><td class="num">{seconds:.0f}</td></tr>'
        for name, result, seconds in rows
    )
    page.add(
        View(
            "static",
            "Studies",
            html=f"<table><tr><th>study</th><th>headline</th><th>time (s)</th></tr>{table}</table>",
        )
    )
    for _name, result, _ in rows:
        page.add(View("static", result.title, html=_findings_html(result.findings)))
    return page
