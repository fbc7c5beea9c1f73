"""Regenerate the screenshots in this folder: ``python docs/screenshots/make_screenshots.py``.

Pages are built from the organism (and SmolLM2 when ``lens.smollm2.available()``) and opened
in headless Chromium (``lens.html.browser``); each shot hovers or sets a control first.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import lens
from lens.html import (
    Report,
    attention_patterns,
    attention_view,
    circuit_view,
    feature_cards_view,
    logit_lens_view,
    patching_view,
)
from lens.html.browser import load, open_browser

HERE = Path(__file__).resolve().parent


def neuron_cards(model, layer: int, count: int = 2) -> list[dict]:
    """Feature cards for the ``count`` MLP neurons of ``layer`` with the largest activation
    over the organism's held-out documents."""
    from lens.hooks import Probe, apply
    from lens.tuned_lens.corpora import builtin_corpus

    docs = builtin_corpus("organism", "heldout")[:200]
    probe = Probe(f"blocks.{layer}.mlp.hook_post", to_cpu=True)
    rows = []
    with torch.no_grad(), apply(model, probes=[probe]):
        for doc in docs:
            b = lens.tokens.batch(model, [doc])
            model(b.tokens, attention_mask=b.attention_mask)
            ids = b.tokens[0].tolist()
            rows.append(([model.tokenizer.decode([i]) for i in ids], probe.value[0]))
    w_out = model.blocks[layer].mlp.W_out.detach()
    effects = w_out @ model.W_U.detach()
    peak = torch.stack([a.max(0).values for _, a in rows]).max(0).values
    cards = []
    for n in peak.topk(count).indices.tolist():
        acts = [a[:, n].numpy() for _, a in rows]
        order = np.argsort([-a.max() for a in acts])[:6]
        allv = np.concatenate(acts)
        counts, edges = np.histogram(allv, bins=30)
        eff = effects[n]
        top, bottom = eff.topk(8).indices.tolist(), (-eff).topk(8).indices.tolist()
        cards.append({
            "id": f"L{layer}.n{n}",
            "title": f"MLP neuron {n} of layer {layer}",
            "contexts": [{"tokens": rows[i][0], "acts": acts[i].tolist(), "label": f"doc {i}"}
                         for i in order],
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
            "logits": {
                "positive": [[model.tokenizer.decode([t]), float(eff[t])] for t in top],
                "negative": [[model.tokenizer.decode([t]), float(eff[t])] for t in bottom],
            },
            "stats": {"max act": float(allv.max()), "act > 0.1": float((allv > 0.1).mean())},
        })  # fmt: skip
    return cards


def main() -> int:
    out = Path(tempfile.mkdtemp())
    model = lens.load_model("organism")
    prompt = "the job of alice is"
    plain = lens.logit_lens(model, [prompt], positions="all", top_k=5, targets=["lawyer"])
    tuned = lens.logit_lens(
        model, [prompt], positions="all", top_k=5, targets=["lawyer"],
        translator=lens.tuned_lens.load("organism"),
    )  # fmt: skip
    pages = {
        "lens": Report("logit lens / tuned lens: 'the job of alice is'").add(
            logit_lens_view([plain, tuned])
        ),
    }
    from lens.patching import activation_patching

    pat = activation_patching(
        model, [prompt], ["the job of bob is"], answer="lawyer", sites=["resid_pre", "z"]
    )
    pages["patching"] = Report("activation patching").add(patching_view(pat))
    pages["features"] = Report("organism MLP neurons").add(
        feature_cards_view(neuron_cards(model, 2))
    )
    big = lens.load_model("smollm2-135m-instruct") if lens.smollm2.available() else model
    name = "SmolLM2-135M-Instruct" if big is not model else "organism"
    from benchmarks.html import PROMPT

    ids = lens.tokens.batch(big, [PROMPT]).tokens[0, :64].tolist()
    att, toks, layers = attention_patterns(big, [ids])
    pages["attention"] = Report(f"attention patterns ({name})").add(
        attention_view(att, toks, layers=layers)
    )
    from lens.circuits import attribute, faithfulness_curve

    clean, corrupt = ["The capital of France is"], ["The capital of Italy is"]
    kw = {"answer": " Paris", "wrong": " Rome"} if big is not model else {}
    if big is model:
        clean, corrupt, kw = ["the job of alice is"], ["the job of bob is"], {"answer": "lawyer"}
    graph = attribute(big, clean, corrupt, method="eap", **kw)
    sizes = sorted({int(v) for v in np.logspace(0, 3, 12).round()})
    curve = faithfulness_curve(big, graph, clean, corrupt, sizes=sizes, **kw)
    pages["circuit"] = Report(f"circuit ({name}: France/Italy -> Paris)").add(
        circuit_view(graph, curve=curve)
    )
    driver = open_browser()
    try:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import Select

        def find(css):
            return driver.find_element(By.CSS_SELECTOR, css)

        for key, page in pages.items():
            loaded = load(driver, page.write(out / f"{key}.html"))
            assert not loaded.errors and not loaded.requests, loaded
            driver.set_window_size(1400, 900)
            if key == "lens":
                find('.lens-tabs button[data-index="2"]').click()
                ActionChains(driver).move_to_element(
                    find('rect.cell[data-r="4"][data-c="5"]')
                ).perform()
            elif key == "patching":
                ActionChains(driver).move_to_element(
                    find('rect.cell[data-r="3"][data-c="4"]')
                ).perform()
            elif key == "attention":
                Select(find(".layer-select select")).select_by_index(5)
                Select(find(".head-select select")).select_by_index(3)
                ActionChains(driver).move_to_element(
                    find('rect.cell[data-q="40"][data-k="20"]')
                ).perform()
            elif key == "circuit":
                find("input.edge-slider").send_keys(Keys.ARROW_LEFT)
                driver.set_window_size(1400, 1000)
            elif key == "features":
                ActionChains(driver).move_to_element(find(".ctx .tk")).perform()
            driver.save_screenshot(str(HERE / f"{key}.png"))
            print(
                key,
                f"{(out / f'{key}.html').stat().st_size / 1e6:.2f} MB",
                f"{loaded.seconds:.2f} s",
            )
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
