"""The report.html of each CLI command that writes an output folder (``lens lens``,
``lens patch``, ``lens tuned-lens eval``): one function per command, each called once."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lens.html.attention import attention_patterns, attention_view
from lens.html.heatmap import lines_view
from lens.html.lens_view import logit_lens_view
from lens.html.page import Report, View
from lens.html.patching import patching_view

__all__ = ["lens_report", "patch_report", "tuned_eval_report"]

REPORT = "report.html"


def lens_report(
    model: Any, prompt: Any, *, results: list[Any], folder: str | Path, attention: bool = True
) -> Path:
    """``folder/report.html`` for ``lens lens``: the lens heatmap(s) of the prompt (logit and
    tuned lens as tabs when both are given) and, with ``attention``, every head's pattern.

    Example:
        >>> import lens, tempfile
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = lens.logit_lens(model, [[1, 2, 3]], positions="all")
        >>> lens_report(model, [[1, 2, 3]], results=[res], folder=tempfile.mkdtemp()).name
        'report.html'
    """
    first = results[0]
    text = first.prompts[0] if first.prompts else None
    page = Report(
        f"{first.method}: {text!r}" if text else first.method,
        f"model {first.model or type(model).__name__}",
    )
    page.add(logit_lens_view(results))
    if attention:
        patterns, tokens, layers = attention_patterns(model, prompt)
        page.add(attention_view(patterns, tokens, layers=layers))
    return page.write(Path(folder) / REPORT)


def patch_report(result: Any, *, folder: str | Path) -> Path:
    """``folder/report.html`` for ``lens patch``: one tab per patched site.

    Example:
        >>> import lens, tempfile
        >>> from lens.patching import activation_patching
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> res = activation_patching(model, [[1, 2, 3]], [[1, 4, 3]], answer=5, sites=["z"])
        >>> patch_report(res, folder=tempfile.mkdtemp()).name
        'report.html'
    """
    meta = result.meta or {}
    clean = (meta.get("clean_prompts") or [""])[0]
    corrupt = (meta.get("corrupt_prompts") or [""])[0]
    page = Report(
        f"{result.method} patching", f"clean {clean!r} · corrupt {corrupt!r} · {meta.get('model')}"
    )
    page.add(patching_view(result))
    return page.write(Path(folder) / REPORT)


def tuned_eval_report(
    comparison: Any, *, folder: str | Path, lens_results: Sequence[Any] = ()
) -> Path:
    """``folder/report.html`` for ``lens tuned-lens eval``: KL and cross-entropy per layer
    (logit vs tuned lens), and the two lenses of one held-out text with a toggle."""
    c = comparison
    page = Report("logit lens vs tuned lens", f"{c.n_tokens} held-out tokens")
    page.add(
        lines_view(
            c.layers,
            {"logit lens KL (bits)": c.logit_kl_bits, "tuned lens KL (bits)": c.tuned_kl_bits},
            title="KL to the model's output per layer",
            x_label="layer",
        ),
        lines_view(
            c.layers,
            {"logit lens CE (bits)": c.logit_ce_bits, "tuned lens CE (bits)": c.tuned_ce_bits},
            title="Cross-entropy per layer",
            note=f"the model's own cross-entropy: {c.model_ce_bits:.3f} bits",
            x_label="layer",
        ),
    )
    if lens_results:
        page.add(logit_lens_view(list(lens_results), title="One held-out text"))
    page.add(View("static", "Table", html=f"<pre>{html.escape(c.table())}</pre>"))
    return page.write(Path(folder) / REPORT)
