"""Size and load time of a SmolLM2-sized interactive report (issue #21's budget: <= 5 MB and
open in <= 2 s in headless Chromium).

The report holds a 30-layer x 64-token logit lens (top 5 per cell), all 30 x 9 attention
patterns of the same 64 tokens and a 1,000-edge circuit with its faithfulness curve. The full
run computes them on the real SmolLM2-135M (``lens.smollm2.available()``); ``--quick``, or a
machine without SmolLM2, fills the same shapes with random numbers (the size depends on the
shapes, not on the values). Each page is opened ``rounds`` times in a fresh headless Chromium
(``lens.html.browser``): ``seconds`` is driver.get until every view is drawn, ``ready_ms``
the page's own clock at that moment. Without Chromium the load rows carry an error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.harness import machine_info, markdown_table

N_LAYERS, N_HEADS, N_KV, N_TOKENS, TOP_K, N_EDGES = 30, 9, 3, 64, 5, 1000
PROMPT = (
    "The Eiffel Tower is in Paris, the capital of France. The Colosseum is in Rome, the capital "
    "of Italy. The Brandenburg Gate is in Berlin, the capital of Germany. The Prado Museum is in "
    "Madrid, the capital of Spain. The Acropolis is in Athens, the capital of Greece. The Little "
    "Mermaid statue is in Copenhagen, the capital of Denmark. The Atomium is in"
)


def _synthetic() -> tuple[list[Any], str]:
    """Views of SmolLM2's shapes filled with random numbers."""
    from interventions.edge_graph import Layout
    from lens.circuits import FaithfulnessCurve, Graph
    from lens.html import attention_view, circuit_view, logit_lens_view
    from lens.logit_lens.result import LogitLensResult

    rng = np.random.default_rng(0)
    probs = np.sort(rng.dirichlet(np.ones(50), size=(N_LAYERS, 1, N_TOKENS)), -1)[..., ::-1]
    res = LogitLensResult(
        layers=np.arange(N_LAYERS),
        site="resid_post",
        norm="recompute",
        positions=np.arange(N_TOKENS)[None],
        valid=np.ones((1, N_TOKENS), bool),
        input_ids=rng.integers(0, 49152, (1, N_TOKENS)),
        top_ids=rng.integers(0, 49152, (N_LAYERS, 1, N_TOKENS, 10)),
        top_probs=probs[..., :10].astype(np.float32),
        entropy=rng.random((N_LAYERS, 1, N_TOKENS)).astype(np.float32) * 5,
        token_strings={i: f"tok{i}" for i in range(49152)},
    )
    att = rng.random((N_LAYERS, N_HEADS, N_TOKENS, N_TOKENS)) * np.tri(N_TOKENS)
    att /= att.sum(-1, keepdims=True)
    lay = Layout(N_LAYERS, N_HEADS, N_KV, False)
    for layer in range(N_LAYERS):
        lay.writers.extend([f"a{layer}.h{h}" for h in range(N_HEADS)] + [f"m{layer}"])
        lay.readers.extend(f"a{layer}.h{h}<q>" for h in range(N_HEADS))
        lay.readers.extend(f"a{layer}.kv{j}<{kind}>" for kind in "kv" for j in range(N_KV))
        lay.readers.append(f"m{layer}")
    lay.writers.insert(0, "input")
    lay.readers.append("logits")
    graph = Graph(lay, torch.randn(len(lay.writers), len(lay.readers)) * lay.mask())
    sizes = sorted({0, *np.unique(np.logspace(0, 3, 18).round().astype(int)).tolist()})
    faith = np.linspace(0, 1, len(sizes)).tolist()
    curve = FaithfulnessCurve(sizes, sizes, faith, 0.5, 0.5)
    tokens = [f"tok{i}" for i in res.input_ids[0]]
    views = [
        logit_lens_view(res, top_k=TOP_K),
        attention_view(att, tokens),
        circuit_view(graph, curve=curve, max_edges=N_EDGES),
    ]
    return views, "random numbers in SmolLM2-135M's shapes"


def _smollm2() -> tuple[list[Any], str]:
    """The same views computed on the real SmolLM2-135M-Instruct."""
    import lens
    from lens.circuits import attribute, faithfulness_curve
    from lens.html import attention_patterns, attention_view, circuit_view, logit_lens_view
    from lens.tokens import batch

    model = lens.load_model("smollm2-135m-instruct")
    ids = batch(model, [PROMPT]).tokens[0, :N_TOKENS].tolist()
    assert len(ids) == N_TOKENS, f"the prompt has {len(ids)} tokens, not {N_TOKENS}"
    res = lens.logit_lens(model, [ids], positions="all", top_k=TOP_K)
    att, tokens, layers = attention_patterns(model, [ids])
    clean, corrupt = ["The capital of France is"], ["The capital of Italy is"]
    graph = attribute(model, clean, corrupt, answer=" Paris", wrong=" Rome", method="eap")
    sizes = sorted({int(v) for v in np.logspace(0, 3, 12).round()})
    curve = faithfulness_curve(
        model, graph, clean, corrupt, answer=" Paris", wrong=" Rome", sizes=sizes
    )
    views = [
        logit_lens_view(res, top_k=TOP_K),
        attention_view(att, tokens, layers=layers),
        circuit_view(graph, curve=curve, max_edges=N_EDGES),
    ]
    return views, "SmolLM2-135M-Instruct"


def run(quick: bool = False, rounds: int = 5, keep: str | None = None) -> list[dict[str, Any]]:
    """Rows: the page's size (in all and per view) and its load time in headless Chromium
    (``keep``: also copy the page to that path)."""
    from lens import smollm2
    from lens.html import Report
    from lens.html.browser import load, missing, open_browser

    real = not quick and smollm2.available()
    views, source = _smollm2() if real else _synthetic()
    folder = Path(tempfile.mkdtemp(prefix="lens-bench-html-"))
    rows: list[dict[str, Any]] = []
    for view in views:
        one = Report(view.title).add(view).to_html()
        rows.append({"case": f"html view: {view.kind}", "size_mb": len(one.encode()) / 1e6})
    path = Report("SmolLM2-sized report", source).add(*views).write(folder / "report.html")
    size = path.stat().st_size / 1e6
    if keep:
        Path(keep).write_bytes(path.read_bytes())
    rows.append(
        {"case": "html report: size (lens + attention + circuit)", "size_mb": size, "data": source,
         "target": "<= 5 MB", "ok": size <= 5.0}
    )  # fmt: skip
    why = missing()
    if why:
        rows.append({"case": "html report: open in headless chromium", "error": why})
        return rows
    seconds, ready, errors, requests = [], [], 0, 0
    for _ in range(1 if quick else rounds):
        driver = open_browser()
        try:
            loaded = load(driver, path)
        finally:
            driver.quit()
        seconds.append(loaded.seconds)
        ready.append(loaded.ready_ms)
        errors += len(loaded.errors)
        requests += len(loaded.requests) + len(loaded.resources)
    rows.append(
        {
            "case": "html report: open in headless chromium",
            "seconds_median": statistics.median(seconds),
            "seconds_min": min(seconds),
            "seconds_max": max(seconds),
            "ready_ms_median": statistics.median(ready),
            "console_errors": errors,
            "requests": requests,
            "rounds": len(seconds),
            "data": source,
            "target": "<= 2 s",
        }
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="random numbers, one load")
    parser.add_argument("--rounds", type=int, default=5, help="page loads (default 5)")
    parser.add_argument("--keep", default=None, help="also write the page to this path")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = run(quick=args.quick, rounds=args.rounds, keep=args.keep)
    print(json.dumps(machine_info()))
    columns = ["case", "size_mb", "seconds_median", "seconds_min", "seconds_max", "ready_ms_median"]
    print(markdown_table(rows, [*columns, "console_errors", "requests", "target", "data"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
