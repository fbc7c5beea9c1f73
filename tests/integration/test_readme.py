"""The README's Python examples run as written (every ```python block, in one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import lens

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write plots into the working directory
    blocks = python_blocks()
    assert blocks, "README.md has no ```python block"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    model = namespace["model"]
    assert lens.count_hooks(model) == 0  # every `with lens.apply(...)` cleaned up
    # the claim written next to the quickstart's logit lens: p("lawyer") rises to ~1 by the top
    probs = namespace["res"].target_probs[:, 0, 0]
    assert float(probs[-1]) > 0.9 and float(probs[0]) < 0.5
    assert (tmp_path / "resid_pre.png").stat().st_size > 0
    logits = namespace["last"]
    assert logits.shape == (2, model.cfg.d_vocab) and bool(torch.isfinite(logits).all())
