"""lens.html without a browser: safe embedding, page structure, reductions, the CLI hooks
(report.html written, --no-html, lens view). The browser tier is tests/browser."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from lens.cli import main
from lens.html import Report, View, feature_cards_view, heatmap_view, safe_json
from lens.html.page import CSP, f16_base64, rounded

NASTY = ["<script>alert(1)</script>", '"&amp;', "a\nb", "שלום", "</script><!--", "\u2028x"]


def test_safe_json_cannot_close_its_block_and_round_trips():
    text = safe_json({"tokens": NASTY})
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == {"tokens": NASTY}


def test_page_is_self_contained_and_escapes_text(tmp_path):
    view = heatmap_view([[0.5, 0.25]], rows=[NASTY[0]], cols=NASTY[1:3], title=NASTY[4])
    page = Report(NASTY[0], NASTY[1]).add(view, View("static", NASTY[0], note=NASTY[2]))
    text = page.write(tmp_path / "r.html").read_text(encoding="utf-8")
    assert f'content="{CSP}"' in text and "default-src 'none'" in CSP
    assert not re.search(r"<(link|iframe|img|object|embed)\b|(?<![-\w])src=|@import|url\(", text)
    assert text.count("<script") == 2 and text.count("</script>") == 2  # data + renderer
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # title, heading: escaped
    data = re.search(r'<script type="application/json" id="lens-data-0">(.*?)</script>', text)
    assert data is not None and json.loads(data.group(1))["rows"] == [NASTY[0]]


def test_reductions():
    assert rounded([0.123456, np.nan, np.inf]) == [0.1235, None, None]
    values = np.array([0.1, 0.5, 1 / 3], dtype=np.float32)
    back = np.frombuffer(base64.b64decode(f16_base64(values)), dtype="<f2")
    assert np.allclose(back, values, atol=1e-3) and not np.array_equal(back, values)


def test_heatmap_refuses_mismatched_labels():
    with pytest.raises(ValueError, match="shape"):
        heatmap_view([[1.0, 2.0]], rows=["a", "b"], cols=["x", "y"])


def test_feature_cards_check_and_reduce():
    ctx = {"tokens": [f"t{i}" for i in range(100)], "acts": [0.0] * 60 + [5.0] + [0.0] * 39}
    card = feature_cards_view([{"id": 1, "contexts": [ctx]}], max_tokens=10).data["cards"][0]
    window = card["contexts"][0]
    assert len(window["tokens"]) == 10 and 5.0 in window["acts"]  # the peak kept in view
    with pytest.raises(ValueError, match="tokens"):
        feature_cards_view([{"id": 2, "contexts": [{"tokens": ["a"], "acts": [1.0, 2.0]}]}])
    with pytest.raises(ValueError, match="'id' and 'contexts'"):
        feature_cards_view([{"contexts": []}])


def test_cli_writes_report_html_and_view_finds_it(tmp_path, capsys):
    out = tmp_path / "lens"
    assert main(["lens", "random:llama", "ab<c", "--top-k", "3", "--out", str(out)]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'data-kind="heatmap"' in page and 'data-kind="attention"' in page
    capsys.readouterr()
    assert main(["view", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str((out / "report.html").resolve())
    bare = tmp_path / "bare"
    assert main(["lens", "random:llama", "ab", "--out", str(bare), "--no-html"]) == 0
    assert not (bare / "report.html").exists() and (bare / "result.json").exists()
    assert main(["view", str(bare)]) == 2
    assert "no report.html" in capsys.readouterr().err


def test_study_arrays_become_views():
    from lens.html.study import array_views

    data = {
        "per_layer": {"layers": [4, 5, 6], "a": [0.1, 0.2, 0.3], "b": [1, 2, 3], "m": [[1, 2]] * 3},
        "runs": [{"grid": [[0.5, None], [0.25, 1.0]]}],
        "labels": ["x", "y", "z"],
        "flag": True,
    }
    views = {v.title: v for v in array_views(data)}
    assert set(views) == {"per_layer.m", "per_layer: a, b", "runs[0].grid"}
    assert views["per_layer.m"].data["rows"] == ["4", "5", "6"]
    lines = views["per_layer: a, b"].data
    assert lines["x"] == ["4", "5", "6"] and [s["name"] for s in lines["series"]] == ["a", "b"]
    assert views["runs[0].grid"].data["panels"][0]["z"] == [[0.5, None], [0.25, 1.0]]
