"""Every kind of report opened in headless Chromium: no console error, no request, hover text
equal to the result's numbers, the head selector and the circuit slider doing their job,
tokens shown as text (never markup), a screenshot of each."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import lens
from lens.circuits import attribute, faithfulness_curve
from lens.html import (
    Report,
    View,
    attention_patterns,
    attention_view,
    circuit_view,
    feature_cards_view,
    index_page,
    logit_lens_view,
    patching_view,
    study_page,
    trace_view,
)
from lens.html.browser import PageLoad, load
from lens.patching import activation_patching, causal_trace
from lens.studies.base import Finding, StudyResult

pytestmark = pytest.mark.browser

NASTY = [
    "<script>window.__pwned=1</script>",
    '"quoted" & &amp;',
    "line\nbreak",
    "שלום עולם",
    "</script><img src=x onerror=window.__pwned=2>",
]
IDS = [[1, 2, 3, 4, 5]]


def shown(text: str) -> str:
    """How core.js shows a token (LENS.tok): visible whitespace, text as it is."""
    return text.replace("\n", "\u21b5").replace("\t", "\u21e5").replace(" ", "\u00b7")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return lens.load_model(lens.tiny_config("llama"))


def open_clean(browser, page: Report, path) -> PageLoad:
    """Write and open ``page``; it must draw with no console error and no request."""
    loaded = load(browser, page.write(path))
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    assert loaded.errors == []
    assert loaded.requests == [] and loaded.resources == []
    assert browser.execute_script("return window.__pwned === undefined")
    return loaded


def hover(browser, element) -> str:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    ActionChains(browser).move_to_element(element).perform()
    return browser.find_element(By.CSS_SELECTOR, '#lens-tip [data-key="value"] .tip-v').text


def css(browser, selector: str, within=None):
    from selenium.webdriver.common.by import By

    return (within or browser).find_elements(By.CSS_SELECTOR, selector)


def test_lens_heatmap_hover_toggle_and_escaping(browser, model, tmp_path, shots):
    plain = lens.logit_lens(model, IDS, positions="all", top_k=5, targets=[7])
    other = lens.logit_lens(model, IDS, positions="all", top_k=5, targets=[7], site="resid_pre")
    other = dataclasses.replace(other, method="tuned lens")  # a second lens to toggle to
    for res in (plain, other):
        res.token_strings.update({i + 1: t for i, t in enumerate(NASTY)})
    open_clean(browser, Report(NASTY[0]).add(logit_lens_view([plain, other])), tmp_path / "a.html")
    assert browser.title == NASTY[0]
    assert browser.execute_script("return document.scripts.length") == 2  # data + renderer
    labels = [e.text for e in css(browser, "svg.lens-heatmap text.axis")]
    assert [shown(t)[:11] for t in NASTY] == [x.rstrip("…") for x in labels[-5:]]

    layer, col = 1, 2
    pos = int(np.nonzero(plain.valid[0])[0][col])
    cell = css(browser, f'rect.cell[data-r="{layer}"][data-c="{col}"]')[0]
    assert hover(browser, cell) == f"{plain.top_probs[layer, 0, pos, 0]:.4f}"
    tip = css(browser, "#lens-tip .tip-line")
    tokens = [line.text.split("\n")[0] for line in tip[-5:]]
    assert tokens == [shown(plain.token_str(i)) for i in plain.top_ids[layer, 0, pos]]
    browser.save_screenshot(str(shots / "lens_heatmap.png"))

    css(browser, '.lens-tabs button[data-index="2"]')[0].click()  # tuned lens: top-1
    cell = css(browser, f'rect.cell[data-r="{layer}"][data-c="{col}"]')[0]
    value = hover(browser, cell)
    assert value == f"{other.top_probs[layer, 0, pos, 0]:.4f}"
    assert value != f"{plain.top_probs[layer, 0, pos, 0]:.4f}"  # the toggle changed the data


def test_attention_head_selector(browser, model, tmp_path, shots):
    from selenium.webdriver.support.ui import Select

    pat, _, layers = attention_patterns(model, IDS)
    open_clean(browser, Report("attention").add(attention_view(pat, NASTY)), tmp_path / "b.html")

    def fills():
        return [r.get_attribute("fill") for r in css(browser, "svg.lens-attention rect.cell")]

    q, k = 3, 1
    cell = css(browser, f'rect.cell[data-q="{q}"][data-k="{k}"]')[0]
    assert hover(browser, cell) == f"{float(np.float16(pat[0, 0, q, k])):.4f}"
    before = fills()
    assert len(before) == 15  # causal: the lower triangle of 5 x 5
    Select(css(browser, ".head-select select")[0]).select_by_index(1)
    assert css(browser, "svg.lens-attention")[0].get_attribute("data-head") == "1"
    assert fills() != before
    cell = css(browser, f'rect.cell[data-q="{q}"][data-k="{k}"]')[0]
    assert hover(browser, cell) == f"{float(np.float16(pat[0, 1, q, k])):.4f}"
    Select(css(browser, ".layer-select select")[0]).select_by_index(2)
    cell = css(browser, f'rect.cell[data-q="{q}"][data-k="{k}"]')[0]
    assert hover(browser, cell) == f"{float(np.float16(pat[2, 1, q, k])):.4f}"
    browser.save_screenshot(str(shots / "attention.png"))


def test_circuit_slider_counts_edges(browser, model, tmp_path, shots):
    from selenium.webdriver.common.keys import Keys

    clean, corrupt = [[1, 2, 3, 4]], [[1, 6, 3, 4]]
    graph = attribute(model, clean, corrupt, answer=5, method="eap")
    curve = faithfulness_curve(model, graph, clean, corrupt, answer=5)
    view = circuit_view(graph, curve=curve, max_edges=1000)
    open_clean(browser, Report("circuit").add(view), tmp_path / "c.html")
    slider = css(browser, "input.edge-slider")[0]
    slider.send_keys(Keys.HOME)
    counts = []
    for k, size in enumerate(curve.sizes):
        if k:
            slider.send_keys(Keys.ARROW_RIGHT)
        drawn = len(css(browser, 'path.edge[data-on="1"]'))
        assert drawn == graph.top(size).n_edges  # computed here, apart from the view
        readout = css(browser, ".readout")[0].text
        assert readout.startswith(f"{drawn} edges")
        assert f"faithfulness {curve.faithfulness[k]:.3f}" in readout
        counts.append(drawn)
    assert counts[0] == 0 and counts[-1] == graph.n_edges and len(set(counts)) > 3
    slider.send_keys(Keys.HOME)
    for _ in range(len(curve.sizes) // 2):
        slider.send_keys(Keys.ARROW_RIGHT)
    browser.save_screenshot(str(shots / "circuit.png"))


def test_patching_and_tracing_maps(browser, model, tmp_path, shots):
    res = activation_patching(
        model, [[1, 2, 3, 4]], [[1, 6, 3, 4]], answer=5, wrong=7, sites=["resid_pre", "z"]
    )
    trace = causal_trace(model, [[1, 2, 3, 4]], [[1, 2]], answer=5, samples=3, kinds=["resid"])
    page = Report("patching").add(patching_view(res), trace_view(trace, NASTY[:4]))
    open_clean(browser, page, tmp_path / "d.html")
    first, second = css(browser, "section.lens-view")
    cell = css(browser, 'rect.cell[data-r="1"][data-c="2"]', first)[0]
    assert hover(browser, cell) == f"{float(res.values('resid_pre')[1, 2]):.4f}"
    css(browser, '.lens-tabs button[data-index="1"]', first)[0].click()  # z: (layer, head) rows
    n_heads = model.cfg.n_heads
    assert len(css(browser, "rect.cell", first)) == len(res.layers) * n_heads * 4
    cell = css(browser, f'rect.cell[data-r="{n_heads + 2}"][data-c="3"]', first)[0]
    assert hover(browser, cell) == f"{float(res.values('z')[1, 3, 2]):.4f}"
    cell = css(browser, 'rect.cell[data-r="2"][data-c="3"]', second)[0]
    assert hover(browser, cell) == f"{float(trace.restored['resid'][0, 2, 3]):.4f}"
    browser.save_screenshot(str(shots / "patching.png"))


def test_feature_cards_and_study_pages(browser, tmp_path, shots):
    card = {
        "id": 7,
        "title": NASTY[0],
        "contexts": [{"tokens": NASTY, "acts": [0.0, 1.5, -0.25, 3.0, 0.5], "label": "doc 1"}],
        "histogram": {"edges": [0, 1, 2, 3], "counts": [40, 5, 1]},
        "logits": {"positive": [[NASTY[1], 0.8]], "negative": [[NASTY[4], -0.3]]},
        "stats": {"density": 0.012},
    }
    open_clean(browser, Report("cards").add(feature_cards_view([card])), tmp_path / "e.html")
    spans = css(browser, ".ctx .tk")
    assert [s.text for s in spans] == [shown(t) for t in NASTY]
    assert hover(browser, spans[3]) == "3.0000"
    browser.save_screenshot(str(shots / "features.png"))

    result = StudyResult(
        config={"seed": 0},
        model="tiny",
        data={"layers": [0, 1, 2], "effect": [0.1, 0.5, 0.2], "grid": [[0.1, 0.2], [0.3, 0.4]]},
        findings=[Finding(NASTY[0], True, "evidence & more"), Finding("b", False, "none")],
    )
    result.report_body = lambda: "| a | b |\n|---|---|\n| <script>x</script> | 1 |\n\n![p](p.png)"
    study = tmp_path / "study"
    study.mkdir()
    open_clean(browser, study_page(result), study / "report.html")
    assert len(css(browser, "section.lens-view")) == 2  # the grid heatmap and the effect curve
    assert css(browser, "td")[1].text == NASTY[0]
    rows = css(browser, "section.lens-static table")[1].text
    assert "<script>x</script>" in rows
    index = index_page([("study", result, 1.0)], model="tiny")
    open_clean(browser, index, tmp_path / "report.html")
    link = css(browser, "a")[0]
    assert link.get_attribute("href") == (study / "report.html").as_uri()
    link.click()
    assert browser.title == result.title  # the link opens the study's page
    browser.save_screenshot(str(shots / "study_index.png"))


def test_the_checks_catch_requests_and_errors(browser, tmp_path):
    """Negative controls: a page that loads an image is caught by the request log; markup
    that tries to fetch inside a report is blocked by its policy, and still caught twice (the
    attempt in the request log, the refusal as a console error)."""
    (tmp_path / "leaky.html").write_text('<html><body><img src="pixel.png"></body></html>')
    loaded = load(browser, tmp_path / "leaky.html", timeout=0.5)
    assert any(r.endswith("pixel.png") for r in loaded.requests)
    page = Report("blocked").add(View("static", "x", html='<img src="http://127.0.0.1:9/x.png">'))
    loaded = load(browser, page.write(tmp_path / "blocked.html"))
    assert loaded.requests == ["http://127.0.0.1:9/x.png"]
    assert any("Content Security Policy" in e for e in loaded.errors)


def test_cli_reports_match_their_saved_results(browser, tmp_path, shots):
    """``lens lens --out`` and ``lens patch``: the hover text of the report.html they wrote
    equals the number in the result files written beside it."""
    import json

    from lens.cli import main

    out = tmp_path / "lens"
    assert main(["lens", "random:llama", 'a<b>"&', "--top-k", "4", "--out", str(out)]) == 0
    saved = lens.LogitLensResult.load(out)
    open_clean(browser, Report("unused"), tmp_path / "blank.html")  # fresh logs
    loaded = load(browser, out / "report.html")
    assert loaded.errors == [] and loaded.requests == []
    pos = int(np.nonzero(saved.valid[0])[0][3])
    cell = css(browser, 'svg.lens-heatmap rect.cell[data-r="2"][data-c="3"]')[0]
    assert hover(browser, cell) == f"{saved.top_probs[2, 0, pos, 0]:.4f}"
    assert len(css(browser, "svg.lens-attention rect.cell")) > 0

    out = tmp_path / "patch"
    args = ["patch", "random:llama", "--clean", "abcd", "--corrupt", "abce", "--answer", "id:5"]
    assert main([*args, "--wrong", "id:6", "--sites", "resid_pre", "--out", str(out)]) == 0
    values = json.loads((out / "result.json").read_text())["values"]["resid_pre"]
    loaded = load(browser, out / "report.html")
    assert loaded.errors == [] and loaded.requests == []
    col = max(range(len(values[1])), key=lambda c: abs(values[1][c]))  # not a ~0 cell
    assert abs(values[1][col]) > 1e-3
    cell = css(browser, f'rect.cell[data-r="1"][data-c="{col}"]')[0]
    assert hover(browser, cell) == f"{values[1][col]:.4f}"
