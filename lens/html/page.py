"""One self-contained HTML page: views as data (JSON in ``<script type="application/json">``),
the renderer's JavaScript and CSS inlined from this package's ``assets/``, and a
Content-Security-Policy that forbids every network request (the page cannot load anything,
so a mistake shows up as a console error, not as a silent fetch).

Safety: every text from a model (tokens, prompts) reaches the page either through
:func:`html.escape` (static HTML built here) or as JSON that the scripts put in with
``textContent``; :func:`safe_json` escapes ``<``, ``>``, ``&`` and the JavaScript line
separators, so no token can close the data block.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CSP", "Report", "View", "f16_base64", "rounded", "safe_json"]

CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
_ASSETS = {  # view kind -> the script that draws it (core.js always comes first)
    "heatmap": "heatmap.js",
    "lines": "heatmap.js",
    "attention": "attention.js",
    "circuit": "circuit.js",
    "cards": "cards.js",
}


def asset(name: str) -> str:
    """The text of one packaged asset (``lens/html/assets/NAME``)."""
    folder = resources.files("lens.html").joinpath("assets")
    return folder.joinpath(name).read_text(encoding="utf-8")


def safe_json(value: Any) -> str:
    """JSON that can sit inside ``<script type="application/json">`` whatever its strings hold.

    Example:
        >>> safe_json({"t": "</script><b>&"})
        '{"t":"\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e\\\\u0026"}'
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def rounded(values: Any, digits: int = 4) -> Any:
    """An array as nested lists of floats rounded to ``digits`` decimals; NaN/inf -> None.

    Example:
        >>> rounded(np.array([[0.123456, float("nan")]]))
        [[0.1235, None]]
    """
    arr = np.asarray(values, dtype=np.float64)
    out = np.round(arr, digits).astype(object)
    out[~np.isfinite(arr)] = None
    return out.tolist()


def f16_base64(values: Any) -> str:
    """Float values as little-endian float16, base64 (read back by ``LENS.f16`` in core.js).

    Example:
        >>> f16_base64([1.0, 0.5])
        'ADwAOA=='
    """
    arr = np.ascontiguousarray(np.asarray(values, dtype="<f2"))
    return base64.b64encode(arr.tobytes()).decode("ascii")


def clean(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays -> Python, non-finite floats -> None."""
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, np.generic):
        return clean(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


@dataclass
class View:
    """One section of a page: a ``kind`` the scripts draw from ``data``, or ``"static"``
    HTML (``html``, already escaped by whoever built it)."""

    kind: str
    title: str
    data: Any = None
    note: str = ""
    html: str = ""


@dataclass
class Report:
    """A self-contained page of views.

    Example:
        >>> import tempfile
        >>> from lens.html.heatmap import heatmap_view
        >>> view = heatmap_view([[0.1, 0.9]], rows=["a"], cols=["x", "y"])
        >>> page = Report("demo <page>").add(view)
        >>> text = Report.read(page.write(Path(tempfile.mkdtemp()) / "report.html"))
        >>> "<title>demo &lt;page&gt;</title>" in text, text.count("<script")
        (True, 2)
    """

    title: str
    subtitle: str = ""
    views: list[View] = field(default_factory=list)

    def add(self, *views: View) -> Report:
        self.views.extend(views)
        return self

    def to_html(self) -> str:
        parts, blobs = [], []
        for i, view in enumerate(self.views):
            heading = f"<h2>{html.escape(view.title)}</h2>" if view.title else ""
            note = f'<p class="note">{html.escape(view.note)}</p>' if view.note else ""
            if view.kind == "static":
                parts.append(f'<section class="lens-static">{heading}{note}{view.html}</section>')
                continue
            src = f"lens-data-{i}"
            parts.append(
                f'<section class="lens-view" data-kind="{html.escape(view.kind)}" '
                f'data-src="{src}">{heading}{note}<div class="lens-body"></div></section>'
            )
            blobs.append(
                f'<script type="application/json" id="{src}">{safe_json(clean(view.data))}</script>'
            )
        kinds = {v.kind for v in self.views}
        scripts = ["core.js"] + sorted({_ASSETS[k] for k in kinds if k in _ASSETS})
        js = "\n".join(asset(s) for s in scripts).replace("</", "<\\/")
        sub = f'<p class="sub">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return "\n".join(
            [
                "<!doctype html>",
                '<html lang="en"><head><meta charset="utf-8">',
                f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>{html.escape(self.title)}</title>",
                f"<style>{asset('lens.css')}</style></head>",
                f"<body><header><h1>{html.escape(self.title)}</h1>{sub}</header><main>",
                *parts,
                "</main>",
                *blobs,
                f"<script>{js}</script>",
                "</body></html>",
                "",
            ]
        )

    def write(self, path: str | Path) -> Path:
        """Write the page to ``path`` (UTF-8); return the path."""
        path = Path(path)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    @staticmethod
    def read(path: str | Path) -> str:
        return Path(path).read_text(encoding="utf-8")
