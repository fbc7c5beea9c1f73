"""The causal_tracing study on the organism (quick config): runs, saves, and its numbers are
the primitive's."""

from __future__ import annotations

import json

import lens
from lens.patching import causal_trace
from lens.studies import causal_tracing as ct


def test_quick_study_on_the_organism(tmp_path):
    model = lens.load_model("organism")
    res = ct.run(model, ct.quick_config())
    out = res.save(tmp_path / "ct")
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["data"]["languages"]) == {"en", "ka"}
    assert len(res.findings) == 2 and (out / "trace_en.png").is_file()
    en = saved["data"]["languages"]["en"]
    assert en["n_prompts"] == 2 and en["clean_prob"] > en["corrupt_prob"]
    # the study's table is the primitive's, on the same prompts and settings
    known = ct.known_facts(model, ct.facts_by_language(model, ct.quick_config())["en"], 2)
    again = causal_trace(
        model, [p for p, _, _ in known], [s for _, s, _ in known], [a for _, _, a in known],
        window=saved["data"]["window"], samples=2, progress=False,
    )  # fmt: skip
    got = again.by_role("mlp").tolist()
    for row_a, row_b in zip(got, en["by_role"]["mlp"]):
        for a, b in zip(row_a, row_b):
            assert (a != a and b is None) or abs(a - b) < 1e-9
